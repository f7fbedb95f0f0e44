// Sign-in: a staff token in the form, or the one-time code in the URL's fragment (which no
// server ever sees); either is posted once and the session cookie comes back.
import { switchLanguage, t, translate } from "./i18n.js";

const status = document.getElementById("signin-status");

async function post(path, body) {
  const response = await fetch(`/console/api/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.ok) {
    location.replace("/console/");
  } else {
    status.textContent = t("signin.failed");
  }
}

translate();
document.getElementById("lang").addEventListener("click", () => switchLanguage());
document.getElementById("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  post("signin", { token: document.getElementById("token").value.trim() });
});
const code = location.hash.slice(1);
if (code) {
  history.replaceState(null, "", location.pathname); // the code leaves the address bar now
  status.textContent = t("signin.link");
  post("signin/link", { code });
}
