"""The Label Studio server calls the oracle makes, and their errors.

:class:`LabelStudioAPI` names the few calls; :class:`SdkAPI` makes them with label-studio-sdk
(a test passes a fake instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class LabelStudioAPI(Protocol):
    """The few calls the oracle makes (:class:`SdkAPI` implements them with label-studio-sdk)."""

    def project(self, project_id: int) -> dict[str, Any]: ...
    def find_projects(self, title: str) -> list[dict[str, Any]]: ...
    def create_project(self, title: str, description: str, label_config: str) -> int: ...
    def tasks(self, project_id: int, ids: Sequence[int] | None = None) -> list[dict[str, Any]]: ...
    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]: ...
    def update_task(self, task_id: int, **fields: Any) -> None: ...
    def user_name(self, user_id: int) -> str | None: ...


class SdkAPI:
    """:class:`LabelStudioAPI` over ``label_studio_sdk.LabelStudio`` (v2)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        from label_studio_sdk import LabelStudio

        self._client = LabelStudio(base_url=url, api_key=token, timeout=timeout)

    def __repr__(self) -> str:
        return "SdkAPI(...)"  # the client holds the token

    def project(self, project_id: int) -> dict[str, Any]:
        return self._client.projects.get(project_id).dict()

    def find_projects(self, title: str) -> list[dict[str, Any]]:
        return [p.dict() for p in self._client.projects.list(title=title, page_size=100)]

    def create_project(self, title: str, description: str, label_config: str) -> int:
        # Sequential sampling: annotators get tasks in import order, i.e. by query score.
        created = self._client.projects.create(
            title=title, description=description, label_config=label_config,
            sampling="Sequential sampling", show_skip_button=True,
        )
        return int(created.id)

    def tasks(self, project_id: int, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        import json

        query = None
        if ids is not None:
            if not ids:
                return []
            query = json.dumps({"selectedItems": {"all": False, "included": [int(i) for i in ids]}})
        pages = self._client.tasks.list(project=project_id, fields="all", query=query,
                                        page_size=100)
        return [t.dict() for t in pages]

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        done = self._client.projects.import_tasks(project_id, request=list(tasks),
                                                  return_task_ids=True)
        return [int(i) for i in done.task_ids or []]

    def update_task(self, task_id: int, **fields: Any) -> None:
        self._client.tasks.update(str(task_id), **fields)

    def user_name(self, user_id: int) -> str | None:
        user = self._client.users.get(user_id)
        return user.email or user.username or None


def server_errors() -> tuple[type[BaseException], ...]:
    import httpx

    try:
        from label_studio_sdk.core.api_error import ApiError
    except ImportError:  # pragma: no cover - an SDK without it
        return (httpx.HTTPError, OSError)
    return (ApiError, httpx.HTTPError, OSError)


def describe(exc: BaseException) -> str:
    """A short message for a server error (status and body only: never request headers)."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"HTTP {status}: {str(getattr(exc, 'body', ''))[:300]}"
    return f"{type(exc).__name__}: {exc}"
