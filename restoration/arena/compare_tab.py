"""The Compare tab's handlers, a part of `ArenaApp` (restoration/arena/app_state.py): one image
restored by every model of a family, streamed panel by panel with its score table; the zoom's
slider and the PNG downloads when asked for. Output names: "panel-<key>" (input, bicubic, each
model, original), "table", "files", "zoom", "left", "right", "compared" (the run's files, the
zoom's state). Compare's streaming steps are the exception to "only what changes": each sends all
of its outputs, as plain values where it can, which Gradio handles far more cheaply."""

import html
import logging
from pathlib import Path

from restoration.arena.replies import HIDDEN, Refusal, Update, checked, upload_path
from restoration.data import degrade
from restoration.data.degrade import MODES
from restoration.data.images import ImageError
from restoration.data.uploads import open_upload
from restoration.inference.compare import (
    Stopwatch,
    compare_stream,
    family_for_image,
    png_downloads,
    save_panels,
    score_table,
    slider_files,
    what_the_classifier_sees,
)

log = logging.getLogger(__name__)  # one line per Compare: where the time went (app.py shows it)
ZOOM_LABEL = "Zoom: choose two panels above"


class CompareTab:
    """ArenaApp's Compare handlers (its settings, models, families, titles, panel_keys, restorers,
    fidelity classifier, lane and files are made by `ArenaApp.__init__`)."""

    def compare(self, upload, mode: str, degradation: str = "lesson", show_classes: bool = False,
                family: str | None = None, request=None, progress=None):
        """Restore one image with every model of a family (default: the first in `FAMILIES`),
        streaming: yields the panels and the score table each time a panel or a score is ready (the
        other family's panels hidden), then the zoom's choices at the end (the zoom itself and the
        PNG downloads come when asked for: `zoom`, `downloads`). Where the time went is logged in
        one line and kept in `last_compare`."""
        progress = progress or (lambda fraction, desc=None: None)
        checked(mode, MODES, "mode")
        path, name = upload_path(upload)
        checked(degradation, degrade.STANDARD, "degradation")
        family = checked(family or self.default_family, list(self.families), "model family")
        with self.lane.admit(self.client(request).address_key):
            # Every step on the thread that runs torch (torch_thread.py); the lane's wait stays here.
            yield from self.torch_thread.iterate(self._compare_steps(path, name, mode, degradation, show_classes,
                                                                     family, progress))

    def _compare_steps(self, path, name: str, mode: str, degradation: str, show_classes: bool, family: str,
                       progress):
        """`compare`'s steps, once admitted."""
        models = self.families[family]
        progress(0, desc="Opening the image")
        clock = Stopwatch()
        try:
            with clock("open"):
                image = open_upload(path, mode, self.settings)
            stream = compare_stream(image, mode, models, self.settings, self.restorers, degradation, clock)
            del image  # compare_stream holds the only reference now: freed once degraded
            step = next(stream)
        except (ImageError, ValueError) as e:
            raise Refusal(str(e)) from None
        folder, stem = self.files.folder(), Path(name).stem[:60] or "image"
        files: dict[str, str] = {}
        seen: dict[str, str] = {}  # what the fidelity classifier sees in each panel
        # Every step sends every output, each panel as a plain value (its file) unless its
        # caption or visibility changes (or it is the last step): Gradio rebuilds a component's
        # whole configuration for each property update, and for each output a step leaves out
        # (about 5 ms of CPU each: 0.58 s of CPU a Compare when every step sent 13 of them,
        # 0.18 s so), but not for a plain value.
        shown: dict[str, Update] = {}
        try:
            while True:
                progress(step.fraction, desc=step.text)
                new = [p for p in step.panels if p.key not in files]  # each panel is encoded once
                files |= {k: str(f) for k, f in save_panels(new, folder, stem, clock).items()}
                if show_classes and self.fidelity is not None:
                    seen |= {p.key: what_the_classifier_sees(self.fidelity, p) for p in new}
                out = self._step_outputs(step, files, seen, shown, mode, family)
                if not step.done:
                    yield out | {"compared": None, "left": None, "right": None}
                    step = next(stream)
                    continue
                choices = [(p.title, p.key) for p in step.panels]
                left, right = "bicubic", models[0].entry.name
                state = {"files": files, "titles": {p.key: p.title for p in step.panels}}
                self.last_compare = clock
                w, h = step.panels[-1].size
                log.info("compare %d×%d, %s, %s, %s: %s", w, h, mode, degradation, family, clock.line())
                yield out | {"compared": state, "left": Update(left, choices=choices),
                             "right": Update(right, choices=choices)}
                return
        except Exception:  # a run that fails half-way leaves none of its panels beside the error
            yield {k: v for k, v in self.cleared(family).items() if k not in ("files", "zoom")}  # not its outputs
            raise

    def _step_outputs(self, step, files: dict, seen: dict, shown: dict, mode: str, family: str) -> dict:
        """A Compare step's panels (by name; `shown` remembers what each was sent as) and score
        table."""
        by_key = {p.key: p for p in step.panels}
        out = {}
        for k in self.panel_keys:
            panel = self._panel(k, by_key.get(k), files.get(k), mode, family)
            # The last step sends every panel whole: an API client's result has every caption.
            out[f"panel-{k}"] = panel if step.done or _restyled(panel, shown.get(k)) else panel.value
            shown[k] = panel
        out["table"] = score_table(step.panels, mode, seen) + (
            "" if step.done else f"\n\n*{html.escape(step.text)}…*")
        return out

    def cleared(self, family: str | None = None) -> dict:
        """Compare's outputs with nothing in them: each panel of `family` empty under its title, no
        table, no files, no zoom. The page shows this when a run starts (before any check, so that a
        refusal leaves nothing of the previous image on screen) and when a run fails half-way."""
        out = {f"panel-{k}": Update(None, label=self.titles[k], visible=self._shown(k, family))
               for k in self.panel_keys}
        return out | {"table": "", "files": None, "zoom": Update(None, label=ZOOM_LABEL), "compared": None,
                      "left": Update(None, choices=[]), "right": Update(None, choices=[])}

    def _shown(self, key: str, family: str | None) -> bool:
        """Whether Compare shows a panel for `family` (the other families' models are hidden)."""
        family = family if family in self.families else self.default_family
        return key in ("input", "bicubic", "original") or key in {m.entry.name for m in self.families[family]}

    def _panel(self, key, panel, file, mode, family: str | None = None) -> Update:
        """A panel as shown: its picture under its title and one figure (Panel.caption), or an
        empty panel while its model runs."""
        if panel is not None:
            return Update(file, label=panel.caption(), visible=True)
        if (key == "original" and mode != "degrade") or not self._shown(key, family):
            return HIDDEN  # no original to show, or the other family's panel
        return Update(None, label=f"{self.titles[key]} (restoring…)", visible=True)

    def zoom(self, state, left: str, right: str) -> dict:
        """The two chosen panels at full resolution in the before/after slider (when asked for: a
        Compare sends no zoom, which would be two more full-size pictures to download)."""
        if not state or left not in state["files"] or right not in state["files"]:
            return {"zoom": Update(None)}
        try:
            pair = slider_files(state["files"][left], state["files"][right])  # files: nothing is re-encoded
        except OSError:  # removed by the sweep of old outputs
            raise Refusal("These panels are no longer kept on the server; please run the comparison again.") from None
        return {"zoom": Update(tuple(map(str, pair)), label=f"{state['titles'][left]}  ◀ ▶  {state['titles'][right]}")}

    def downloads(self, state) -> dict:
        """Every panel of the last Compare as a lossless PNG, written now (the first time: then kept)."""
        if not state or not state.get("files"):
            raise Refusal("Run a comparison first: its panels are what you can download.")
        try:
            return {"files": [str(f) for f in png_downloads(state["files"].values())]}
        except OSError:  # removed by the sweep of old outputs
            raise Refusal("These panels are no longer kept on the server; please run the comparison again.") from None

    def suggest_family(self, upload) -> dict:
        """On a new upload (Gradio's payload, not preprocessed: Gradio's own check of an image
        prints a traceback): the family to compare it with, the lesson's for Tiny ImageNet-sized
        thumbnails, photos otherwise (only among the families that loaded). A file that is no
        image is taken off the input (no broken picture stays there) with a warning that says so."""
        try:
            path, name = upload_path(upload)
        except Refusal:
            return {}  # nothing uploaded (or the input just cleared): Compare says what is missing
        try:
            return {"family": family_for_image(path, list(self.families))}
        except ImageError as e:
            return {"upload": None, "warning": str(e).replace(Path(path).name, name, 1)}


def _restyled(panel: Update, before: Update | None) -> bool:
    """Whether a panel's caption or visibility differs from what the page shows (`before`)."""
    return before is None or (panel.label, panel.visible) != (before.label, before.visible)
