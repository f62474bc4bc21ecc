"""`ConnectClient`: the few calls of the Kafka Connect REST API that kgen's tests and tools use."""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from kgen.kafka.errors import ConnectError

POLL_INTERVAL_S = 0.25
# 409: the worker is rebalancing or its config is stale for a moment; the same request
# succeeds once the group settles.
_RETRY_STATUSES = frozenset({409})


class ConnectClient:
    """Talks JSON to a Connect worker at `url` (`http://127.0.0.1:8083`).

    Every call raises `ConnectError` with the worker's own message when it refuses.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def healthy(self) -> bool:
        """True once the worker has joined its group and serves requests (GET /health)."""
        try:
            self.request("GET", "/health", retry=False, timeout=2.0)
        except ConnectError:
            return False
        return True

    def connector_plugins(self) -> list[str]:
        """The connector classes the worker has loaded."""
        plugins = self.request("GET", "/connector-plugins?connectorsOnly=true")
        return sorted(str(plugin["class"]) for plugin in plugins)

    def connectors(self) -> list[str]:
        """The names of the worker group's connectors."""
        return sorted(str(name) for name in self.request("GET", "/connectors"))

    def put_connector(self, name: str, config: Mapping[str, str]) -> dict[str, Any]:
        """Create connector `name` with `config`, or change its config if it exists.

        An invalid config raises ConnectError naming each setting the connector rejected
        (its own validation's words: "database.hostname: ... Connection to ... refused").
        """
        try:
            result: dict[str, Any] = self.request(
                "PUT", f"/connectors/{_quote(name)}/config", dict(config)
            )
        except ConnectError as exc:
            # The worker's answer to an invalid config can be an NPE of its own (Connect 4.3
            # with Debezium 3.6: a setting without a value); validation still says what is wrong.
            problems = (
                self._validation_errors({**config, "name": name})
                if exc.status in (400, 500)
                else []
            )
            if problems:
                raise ConnectError(
                    f"connector {name!r} has an invalid config: {'; '.join(problems)}", exc.status
                ) from exc
            raise
        return result

    def validate(self, config: Mapping[str, str]) -> list[str]:
        """`setting: error` for every setting of `config` (with its `name`) that its connector
        class rejects."""
        connector_class = config.get("connector.class", "")
        answer = self.request(
            "PUT", f"/connector-plugins/{_quote(connector_class)}/config/validate", dict(config)
        )
        problems = []
        for entry in answer.get("configs", []):
            value = entry.get("value") or {}
            for error in value.get("errors") or []:
                problems.append(f"{value.get('name', '?')}: {error}")
        return problems

    def status(self, name: str) -> dict[str, Any]:
        """The connector's state and its tasks' (`connector.state`, `tasks[i].state`)."""
        result: dict[str, Any] = self.request("GET", f"/connectors/{_quote(name)}/status")
        return result

    def delete_connector(self, name: str) -> None:
        """Delete connector `name` (its committed source offsets stay in the offsets topic)."""
        self.request("DELETE", f"/connectors/{_quote(name)}")

    def wait_running(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and at least one task run; raise with the failure's trace
        when one of them failed, or when `timeout` passes. Returns the last status."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.status(name)
            except ConnectError as exc:
                if exc.status != 404:  # 404: not assigned to a worker yet
                    raise
                time.sleep(POLL_INTERVAL_S)
                continue
            states = [status["connector"], *status.get("tasks", [])]
            failed = [state for state in states if state.get("state") == "FAILED"]
            if failed:
                trace = str(failed[0].get("trace", "")).strip()
                raise ConnectError(f"connector {name!r} failed: {_first_lines(trace)}")
            if status.get("tasks") and all(state.get("state") == "RUNNING" for state in states):
                return status
            time.sleep(POLL_INTERVAL_S)
        raise ConnectError(f"connector {name!r} was not running within {timeout:g}s: {status}")

    def _validation_errors(self, config: Mapping[str, str]) -> list[str]:
        if not config.get("connector.class"):
            return []
        try:
            return self.validate(config)
        except ConnectError:
            return []  # e.g. an unknown class: the original error says so

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        retry: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """`method path` with an optional JSON body; the decoded JSON answer (None if empty)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._send(method, path, body, max(0.5, deadline - time.monotonic()))
            except ConnectError as exc:
                if not retry or exc.status not in _RETRY_STATUSES:
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(POLL_INTERVAL_S)

    def _send(self, method: str, path: str, body: object, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ConnectError(
                f"{method} {path}: {_explain(exc.read())} (HTTP {exc.code})", exc.code
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectError(f"{method} {path}: no answer from {self.url}: {reason}") from exc
        return json.loads(payload) if payload.strip() else None


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _explain(payload: bytes) -> str:
    """The worker's `message` from an error body, else the body itself."""
    text = payload.decode(errors="replace").strip()
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        return text or "no message"
    return str(message) if message else text


def _first_lines(trace: str, lines: int = 3) -> str:
    return " | ".join(trace.splitlines()[:lines]) or "no trace"
