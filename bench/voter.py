"""A voter's client for the load benchmarks: Gradio's queue protocol spoken over one kept-alive
HTTP connection, the pictures of each reply downloaded as a browser would.

`gradio_client` costs about 180 ms of CPU a vote here (a thread per call polling for cancels every
50 ms, a new connection per file, each file hashed and copied): with 20 voters in the benchmark's
one process that is most of a core, and its GIL queue shows up in the measured reply times as if
the app were slow. A person's browser costs the server the same requests and the benchmark's
machine almost nothing, so the voters speak the protocol themselves (`/gradio_api/queue/join`,
then the session's event stream until the call completes). `stream` gives each step of a
streaming handler as it comes (bench.speed times a Compare with it: first panel, all panels).
"""

import json
import uuid
from pathlib import Path

import httpx
from gradio_client.utils import apply_diff


class VoterClient:
    """`predict(*inputs, api_name=...)` → the outputs as a tuple, files downloaded (their bytes
    read and dropped; each file output becomes its server path). States (gr.State and
    gr.BrowserState) stay the server's, per session: left out of the inputs and the outputs, as
    gradio_client does. Made, it opens the page as a browser would: the page's load events run
    with its localStorage (`browser`, one new browser id per voter by default), so each voter is
    a judge of its own, not one with every other voter of its address."""

    def __init__(self, url: str, timeout: float = 120.0, browser: str | None = None):
        self.http = httpx.Client(base_url=url.rstrip("/") + "/", timeout=timeout)
        config = self.http.get("config").raise_for_status().json()
        states = {c["id"] for c in config["components"] if c.get("type") in ("state", "browserstate")}
        stored = {c["id"] for c in config["components"] if c.get("type") == "browserstate"}
        self.endpoints = {}  # api name → (fn id, which inputs are states, which outputs are)
        loads = []  # (fn id, inputs) of the page's load events
        for i, dep in enumerate(config["dependencies"]):
            fn = dep.get("id", i)
            if dep.get("api_name"):
                self.endpoints["/" + dep["api_name"]] = (fn, [c in states for c in dep["inputs"]],
                                                         [c in states for c in dep["outputs"]])
            if any(target[1] == "load" for target in dep.get("targets", [])):
                loads.append((fn, dep["inputs"]))
        self.session = uuid.uuid4().hex
        self.fetched: dict[str, None] = {}  # the URLs of the files fetched, oldest first
        self.browser = browser or f"b-{uuid.uuid4().hex}"  # what this page's localStorage holds
        for fn, inputs in loads:  # not queued (queue=False): a plain call, as the page makes it
            self.http.post("gradio_api/run/predict", json={
                "data": [self.browser if c in stored else None for c in inputs], "fn_index": fn,
                "event_data": None, "trigger_id": None, "session_hash": self.session}).raise_for_status()

    def predict(self, *inputs, api_name: str):
        """The call's final outputs (its files downloaded)."""
        for outputs, _done in self.stream(*inputs, api_name=api_name):
            pass
        return outputs

    def stream(self, *inputs, api_name: str):
        """(outputs so far, whether this is the last) for each step the call sends, as it comes,
        the files among them downloaded first (a page shows a picture once it has it). A streaming
        handler's later steps come as diffs of the one before: applied here, as the page does."""
        fn, state_inputs, state_outputs = self.endpoints[api_name]
        given = iter(inputs)
        data = [None if state else next(given, None) for state in state_inputs]
        event = self.http.post("gradio_api/queue/join", json={
            "data": data, "event_data": None, "fn_index": fn, "trigger_id": None,
            "session_hash": self.session}).raise_for_status().json()["event_id"]
        pending = None  # the outputs so far, to which each step's diffs apply
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if message.get("event_id") != event or kind not in ("process_generating", "process_completed"):
                    continue
                output = message.get("output") or {}
                if not message.get("success"):
                    raise RuntimeError(output.get("error") or "the call failed")
                if kind == "process_generating":
                    pending = (list(output["data"]) if pending is None
                               else [apply_diff(old, diff) for old, diff in zip(pending, output["data"])])
                values = pending if kind == "process_generating" else output["data"]
                yield (tuple(self._fetch(x) for x, state in zip(values, state_outputs) if not state),
                       kind == "process_completed")
                if kind == "process_completed":
                    return
        raise RuntimeError("the event stream ended before the call completed")

    def upload(self, path) -> dict:
        """A local file sent as the page sends an upload: the file payload an image input takes."""
        with open(path, "rb") as f:
            paths = self.http.post("gradio_api/upload", files={"files": (Path(path).name, f)}).raise_for_status().json()
        return {"path": paths[0], "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def _fetch(self, value):
        """A file output's bytes downloaded (as the page does), its path returned; else the value.
        A URL this page fetched before is not fetched again: a browser shows an image whose URL
        it already has from its list of available images (the judged pair's thumbnails are the
        pictures of the pair before; `tests/test_browser.py` checks that Chromium does this)."""
        if isinstance(value, dict) and value.get("__type__") == "update":
            value = value.get("value")
        if isinstance(value, dict) and value.get("url") and value.get("path"):
            url = value["url"]
            if url not in self.fetched:
                self.http.get(url).raise_for_status()
                self.fetched[url] = None
                while len(self.fetched) > 64:  # a browser's is bounded too; a voter needs the last few
                    self.fetched.pop(next(iter(self.fetched)))
            return value["path"]
        return value

    def close(self):
        self.http.close()
