"""The event contracts of Veilig Haarlem, imported by every service (see README.md)."""
