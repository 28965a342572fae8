"""This worker's row in the workers table: written when it is ready and every
KILN_WORKER_BEAT_SECONDS while it lives, deleted when it stops."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.core import workers

log = logging.getLogger("kiln.worker")


class Presence:
    def __init__(self, sessions: sessionmaker[Session], worker_id: str, device: str, every_seconds: float):
        self.sessions, self.worker_id, self.device, self.every = sessions, worker_id, device, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-presence", daemon=True)

    def start(self) -> "Presence":
        self._beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with self.sessions() as session:
                workers.gone(session=session, worker_id=self.worker_id)
                session.commit()
        except Exception:  # noqa: BLE001 - its row ages out of "alive" anyway
            log.warning("could not remove worker %s from the workers table", self.worker_id, exc_info=True)

    def _beat(self) -> None:
        try:
            with self.sessions() as session:
                workers.beat(session=session, worker_id=self.worker_id, device=self.device)
                session.commit()
        except Exception:  # noqa: BLE001 - the next beat tries again (a database restarting)
            log.warning("worker presence beat failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._beat()
