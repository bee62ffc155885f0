"""The review web app (FastAPI): server-rendered pages for people, a JSON API for scripts."""

from carealign.review.web.app import ReviewSettings, create_app

__all__ = ["ReviewSettings", "create_app"]
