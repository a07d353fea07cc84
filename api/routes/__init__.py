"""One router per resource; `api.app` lists them in one place."""
