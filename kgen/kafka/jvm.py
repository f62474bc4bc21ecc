"""`JavaService`: one long-running JVM of a Kafka component (a Connect worker, MirrorMaker 2)
with its log4j log and console output in a directory, started detached from the terminal."""

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kgen.kafka.config import log4j2_config
from kgen.kafka.node import terminate_child
from kgen.kafka.process import die_with_parent, signal_group, tail


class JavaService:
    """`main_class` run with every jar of `libs` and `args`; logs go to `directory/logs/`.

    With `stop_with_parent` (Linux) the JVM gets SIGTERM when the thread that launched it
    dies, so a killed test session leaves no JVM behind.
    """

    def __init__(
        self,
        directory: Path,
        *,
        main_class: str,
        jvm: Sequence[str],
        stop_with_parent: bool = True,
    ) -> None:
        self.directory = directory
        self.main_class = main_class
        self._jvm = tuple(jvm)
        self._stop_with_parent = stop_with_parent
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def log_file(self) -> Path:
        """The component's log4j output."""
        return self.directory / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr (crashes, JVM errors)."""
        return self.directory / "logs" / "console.out"

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs."""
        return self._process.pid if self.is_running() and self._process is not None else None

    def is_running(self) -> bool:
        """True while the JVM is alive."""
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        """The exit code once the launched JVM has exited, else None."""
        return None if self._process is None else self._process.poll()

    def launch(self, java: Path, libs: Path, args: Sequence[str]) -> None:
        """Start the JVM and return at once."""
        logs = self.log_file.parent
        logs.mkdir(parents=True, exist_ok=True)
        log4j = self.directory / "log4j2.xml"
        log4j.write_text(log4j2_config(self.log_file), encoding="utf-8")
        command = [
            str(java),
            *self._jvm,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            str(libs / "*"),  # the JVM expands `dir/*`; no shell is involved
            self.main_class,
            *args,
        ]
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        preexec = die_with_parent() if self._stop_with_parent else None
        with self.console_log.open("ab") as console:
            # Own session: Ctrl-C in a terminal does not reach it and stop() signals the group.
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - it only calls prctl(2), no locks
            )

    def stop(self, timeout: float) -> None:
        """SIGTERM the JVM (its shutdown hook stops cleanly), SIGKILL after `timeout`."""
        process, self._process = self._process, None
        if process is not None:
            terminate_child(process, timeout)

    def kill(self) -> None:
        """SIGKILL the JVM; waits until it is gone."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def log_since_launch(self) -> str:
        """What the JVM logged since the last launch."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of the console and of the log, for an error message."""
        parts = []
        for path in (self.console_log, self.log_file):
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path} (last lines) ---\n{text}")
        return "\n".join(parts)
