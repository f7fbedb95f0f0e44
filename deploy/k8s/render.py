"""Render a kustomization without kustomize: the subset this project's overlays use.

``kubectl kustomize`` is the reference (the tests compare both when kubectl is installed); this
renderer exists so that the manifests are rendered and validated on any machine with Python:

- ``resources``: files (several documents each) and directories with a kustomization;
- ``namespace``: set on every namespaced resource;
- ``labels`` (``pairs``, without selectors or templates): added to ``metadata.labels``;
- ``images``: ``newName``/``newTag``/``digest`` for containers and init containers;
- ``patches``: strategic-merge patches (a file or inline, found by kind and name; lists of
  containers, env, ports, volumes and mounts merge by name, other lists are replaced, as
  kustomize does for custom resources) and JSON 6902 patches (a list of operations) with a
  ``target`` of kind and name (a regular expression, as in kustomize).

    python deploy/k8s/render.py deploy/k8s/overlays/prod > prod.yaml
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ClusterTriggerAuthentication",
}
# Lists merged element by element in strategic merge patches, and the key that identifies one.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
CORE_GROUPS = ("v1", "apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else load_docs(path)
    for patch in kustomization.get("patches", []):
        _apply_patch(docs, directory, patch)
    if namespace := kustomization.get("namespace"):
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
    for label in kustomization.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise NotImplementedError("labels with includeSelectors/includeTemplates")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    return docs


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}
    ).get("spec")
    if not pod:
        return []
    return pod.get("containers", []) + pod.get("initContainers", [])


def _split_image(ref: str) -> tuple[str, str | None]:
    """registry:5000/name:tag@sha256:… -> (registry:5000/name, tag)."""
    name = ref.partition("@")[0]
    head, sep, tail = name.rpartition(":")
    return (head, tail) if sep and "/" not in tail else (name, None)


def _set_image(doc: Doc, image: Doc) -> None:
    for container in _containers(doc):
        name, tag = _split_image(container.get("image", ""))
        if name != image["name"]:
            continue
        new = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{new}@{image['digest']}"
        else:
            tag = image.get("newTag", tag)
            container["image"] = f"{new}:{tag}" if tag else new


def _matches(doc: Doc, target: Doc) -> bool:
    for key in ("kind", "name", "namespace"):
        if key not in target:
            continue
        value = doc["kind"] if key == "kind" else doc["metadata"].get(key, "")
        if not re.fullmatch(target[key], value):
            return False
    return True


def _apply_patch(docs: list[Doc], directory: Path, patch: Doc) -> None:
    text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
    body = yaml.safe_load(text)
    if isinstance(body, list):  # JSON 6902
        targets = [d for d in docs if _matches(d, patch["target"])]
        if not targets:
            raise ValueError(f"patch target matches nothing: {patch['target']}")
        for doc in targets:
            for op in body:
                _json_patch(doc, op)
        return
    target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
    targets = [d for d in docs if _matches(d, target)]
    if not targets:
        raise ValueError(f"patch target matches nothing: {target}")
    for doc in targets:
        core = doc["apiVersion"].startswith(CORE_GROUPS)
        merged = _merge(doc, {k: v for k, v in body.items() if k != "metadata"}, core)
        doc.clear()
        doc.update(merged)


def _merge(base: Any, patch: Any, core: bool, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v, core, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and core and key in MERGE_KEYS:
        ident = MERGE_KEYS[key]
        out = copy.deepcopy(base)
        for item in patch:
            same = [i for i, b in enumerate(out) if b.get(ident) == item.get(ident)]
            if same:
                out[same[0]] = _merge(out[same[0]], item, core)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _json_patch(doc: Doc, op: Doc) -> None:
    *parents, last = _pointer(op["path"])
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    kind = op["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            node[index] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[index]
        else:
            raise NotImplementedError(kind)
        return
    if kind in ("add", "replace"):
        if kind == "replace" and last not in node:
            raise KeyError(f"replace of a missing path {op['path']}")
        node[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del node[last]
    else:
        raise NotImplementedError(kind)


def dump(docs: list[Doc]) -> str:
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=True) for d in docs)


if __name__ == "__main__":
    sys.stdout.write(dump(render(Path(sys.argv[1]))))
