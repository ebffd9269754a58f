"""TorchThread: work handed over runs on the thread that serves it, results and errors come back,
and nothing changes where no thread claimed it."""

import contextvars
import threading

import pytest

from restoration.inference.torch_thread import Stopping, TorchThread

request = contextvars.ContextVar("request", default=None)


def test_unclaimed_it_runs_inline():
    t = TorchThread()
    assert t.run(threading.get_ident) == threading.get_ident()
    assert list(t.iterate(iter([1, 2]))) == [1, 2]


@pytest.fixture
def served():
    """A TorchThread claimed and served by a thread of its own, as app.py's main thread does."""
    t, up, ready = TorchThread(), threading.Event(), threading.Event()
    server = {}

    def serve():
        server["ident"] = threading.get_ident()
        t.claim()
        ready.set()
        t.serve(up.is_set, poll=0.01)

    up.set()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    yield t, server["ident"], up, thread
    up.clear()
    thread.join(5)


def test_work_runs_on_the_serving_thread_with_the_callers_context(served):
    t, ident, *_ = served
    request.set("r-1")
    assert t.run(lambda: (threading.get_ident(), request.get())) == (ident, "r-1")
    with pytest.raises(ValueError, match="bad image"):  # an error reaches the caller, the thread serves on
        t.run(lambda: (_ for _ in ()).throw(ValueError("bad image")))
    assert t.run(threading.get_ident) == ident


def test_a_generators_steps_run_there_and_closing_closes_it_there(served):
    t, ident, *_ = served
    closed = []

    def steps():
        try:
            for i in range(3):
                yield i, threading.get_ident()
        finally:
            closed.append(threading.get_ident())

    items = t.iterate(steps())
    assert next(items) == (0, ident) and next(items) == (1, ident)
    items.close()  # a client gone half-way
    assert closed == [ident]
    assert list(t.iterate(steps())) == [(0, ident), (1, ident), (2, ident)]


def test_once_the_server_stops_work_runs_inline(served):
    t, ident, up, thread = served
    up.clear()  # the server is down: serve() returns
    thread.join(5)
    assert not thread.is_alive() and t.run(threading.get_ident) == threading.get_ident()


def test_work_waiting_when_the_server_stops_gets_stopping_and_the_warm_up_ends_quietly():
    from restoration.inference.runner import warm_up_in_background

    t = TorchThread()
    t.claim()  # claimed, not serving yet: work handed over waits

    class Restorer:
        def warm_up(self):
            raise AssertionError("never runs: the app stops first")

    done = []
    warming = warm_up_in_background([Restorer(), Restorer()], done.append, run=t.run)
    got = {}
    caller = threading.Thread(target=lambda: got.update(error=_error_of(t.run, threading.get_ident)))
    caller.start()
    while t._queue.qsize() < 2:  # both wait
        threading.Event().wait(0.01)
    t.serve(lambda: False)  # the server is already down: what waits is refused
    caller.join(5)
    warming.join(5)
    assert isinstance(got["error"], Stopping) and not warming.is_alive() and done == []


def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        return e
