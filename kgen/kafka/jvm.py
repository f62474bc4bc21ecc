"""`JavaService`: one long-running JVM of a Kafka component (a Connect worker, MirrorMaker 2)
with its log4j log and console output in a directory, started detached from the terminal;
`JavaComponent`: the base of the classes that run one."""

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

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


class JavaComponent:
    """What a Connect worker and MirrorMaker share: a JVM (`MAIN_CLASS`) with its config and
    logs under `work_dir` (a temporary directory, removed by `stop()`, when not given), and
    the context-manager protocol. Subclasses implement `start()`."""

    MAIN_CLASS = ""
    WORK_DIR_PREFIX = "kgen-java-"

    def __init__(self, work_dir: Path | None, jvm: Sequence[str], stop_with_parent: bool) -> None:
        self._owns_work_dir = work_dir is None
        self._work_dir = None if work_dir is None else Path(work_dir)
        self._jvm = tuple(jvm)
        self._stop_with_parent = stop_with_parent
        self._service: JavaService | None = None

    @property
    def work_dir(self) -> Path:
        """Its config, `log4j2.xml` and `logs/`; a temporary one made on first use."""
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=self.WORK_DIR_PREFIX))
        return self._work_dir

    @property
    def log_file(self) -> Path:
        """The JVM's log4j output."""
        return self._java.log_file

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs."""
        return self._java.pid

    def is_running(self) -> bool:
        """True while the JVM is alive."""
        return self._service is not None and self._service.is_running()

    def start(self, timeout: float = 90.0) -> object:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the JVM (it shuts down cleanly), SIGKILL after `timeout`. A temporary
        `work_dir` is removed."""
        if self._service is not None:
            self._service.stop(timeout)
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._service = None

    def kill(self) -> None:
        """SIGKILL the JVM, as a crash would."""
        if self._service is not None:
            self._service.kill()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the JVM's console and log."""
        return self._java.log_tail(lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _java(self) -> JavaService:
        if self._service is None:
            self._service = JavaService(
                self.work_dir,
                main_class=self.MAIN_CLASS,
                jvm=self._jvm,
                stop_with_parent=self._stop_with_parent,
            )
        return self._service
