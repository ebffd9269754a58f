"""The Gradio app: compare the super-resolution U-Nets side by side, judge them blind in pairs,
and see the human ranking beside PSNR.

    python app.py          # then open the address it prints

The same file is the `app_file` of the Hugging Face Space. Settings come from environment
variables (restoration/settings.py); models are loaded once, in `main`, never at import. All the
work is done by `restoration`: this file only wires it to the page.
"""

import restoration  # noqa: F401  first: one clear line, not a traceback, on Python < 3.11

import html
import secrets
import shutil
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from restoration.arena import MIN_VOTES, Arena, Contender, VoteStore, fit_leaderboard, new_session_id, read_evaluation
from restoration.checkpoint import CheckpointError
from restoration.compare import (
    BattleRenderer,
    Panel,
    compare,
    judge_pool,
    list_images,
    open_upload,
    save_panels,
    slider_pair,
)
from restoration.images import ImageError
from restoration.settings import Settings
from restoration.vote_sync import start_vote_sync
from restoration.weights import load_available_restorers

TITLE = "Super-resolution arena"
MODES = [("Degrade, then restore", "degrade"), ("Upscale ×2", "upscale")]
ANSWERS = {"A is better": "A", "B is better": "B", "Tie": "tie", "Both bad": "both_bad"}
SAID = {"A": "A is better", "B": "B is better", "tie": "a tie", "both_bad": "both bad"}
OUTPUT_MAX_AGE_SECONDS = 3600  # our PNG and CSV downloads are deleted after this
# Panels are shown enlarged without smoothing: a browser's bilinear zoom would hide the very
# differences between the models that the page is for.
CSS = """
.panel img { image-rendering: pixelated; }
.panel .image-frame { width: 100%; height: 100%; }
.panel .image-frame img { width: 100%; height: 100%; object-fit: contain; }
"""
PANEL_HEIGHT = 300
JUDGE_HEIGHT = 420


def _error(message: str) -> gr.Error:
    return gr.Error(html.escape(message))  # the modal renders HTML; a file name must not


def _upload_path(upload) -> tuple[str, str]:
    """(path on the server, the name the user gave it) from an image input that was not
    preprocessed: Gradio's file payload, or a plain path (tests, API)."""
    if not upload:
        raise _error("Upload an image or pick one of the examples first.")
    if isinstance(upload, dict):
        path = upload.get("path")
        if not path:
            raise _error("The upload did not arrive; please try again.")
        return path, upload.get("orig_name") or Path(path).name
    return str(upload), Path(str(upload)).name


class ArenaApp:
    """The app's state and its event handlers, as plain methods (tests call them directly).
    A `progress=gr.Progress()` default is how a Gradio handler asks for a progress bar."""

    def __init__(self, settings: Settings, models: list, problems: list[str] = ()):
        if not models:
            raise ValueError("the app needs at least one restorer")
        self.settings = settings
        self.models = list(models)
        self.notes = [m.note for m in self.models] + list(problems)
        self.titles = {"input": "Low-resolution input", "bicubic": "Bicubic", "original": "Original"}
        self.titles |= {m.entry.name: m.entry.title for m in self.models}
        self.panel_keys = ["input", "bicubic", *[m.entry.name for m in self.models], "original"]
        self.examples = list_images(settings.examples_dir)
        self.pool = judge_pool(settings)
        self.store = VoteStore(settings.votes_db)
        self.renderer = BattleRenderer(self.models, self.pool, settings)
        contenders = [Contender(m.entry.name, m.entry.title, m.revision) for m in self.models]
        self.arena = None
        if len(contenders) >= 2 and self.pool:
            self.arena = Arena(self.store, contenders, sorted(self.pool), min_vote_seconds=settings.min_vote_seconds,
                               votes_per_minute=settings.votes_per_minute)
        self.evaluation = read_evaluation(Path(settings.weights_dir) / "evaluation.json")
        self.outputs = Path(tempfile.mkdtemp(prefix="restoration-app-"))

    def close(self):
        self.store.close()
        shutil.rmtree(self.outputs, ignore_errors=True)

    # ---------------------------------------------------------------------------- Compare

    def _new_output_folder(self) -> Path:
        now = time.time()
        for old in self.outputs.iterdir():
            if now - old.stat().st_mtime > OUTPUT_MAX_AGE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.outputs / secrets.token_hex(8)
        folder.mkdir()
        return folder

    def compare(self, upload, mode: str, progress=gr.Progress()):  # noqa: B008
        """Restore one image with every model. Returns one image per panel, the score table, the
        PNG files, the zoom slider, both zoom choices, and the panels' files for the zoom."""
        path, name = _upload_path(upload)
        progress(0, desc="Opening the image")
        try:
            image = open_upload(path, mode, self.settings)
            panels = compare(image, mode, self.models, self.settings,
                             progress=lambda fraction, text: progress(fraction, desc=text))
        except ImageError as e:
            raise _error(str(e)) from None
        folder, stem = self._new_output_folder(), Path(name).stem[:60] or "image"
        files = {k: str(f) for k, f in save_panels(panels, folder, stem).items()}
        by_key = {p.key: p for p in panels}
        images = [gr.Image(value=files[k], label=by_key[k].caption(), visible=True) if k in by_key
                  else gr.Image(value=None, visible=False) for k in self.panel_keys]
        choices = [(p.title, p.key) for p in panels]
        left, right = "bicubic", self.models[0].entry.name
        state = {"files": files, "titles": {p.key: p.title for p in panels}}
        return (*images, score_table(panels, mode), list(files.values()), self.zoom(state, left, right),
                gr.Dropdown(choices=choices, value=left), gr.Dropdown(choices=choices, value=right), state)

    def zoom(self, state, left: str, right: str):
        """The two chosen panels at full resolution in the before/after slider."""
        if not state or left not in state["files"] or right not in state["files"]:
            return gr.ImageSlider(value=None)
        with Image.open(state["files"][left]) as a, Image.open(state["files"][right]) as b:
            pair = slider_pair(a.convert("RGB"), b.convert("RGB"))
        return gr.ImageSlider(value=pair, label=f"{state['titles'][left]}  ◀ ▶  {state['titles'][right]}")

    # ---------------------------------------------------------------------------- Judge

    def _battle_outputs(self, session, message: str, progress):
        if self.arena is None:
            raise _error("Judging needs at least two models and one image.")
        progress(0, desc="Restoring a new pair")
        battle, shown = self.arena.issue(session, lambda image_id, a, b: self.renderer.render(image_id, a.name, b.name))
        original = shown.original if self.settings.show_original else None
        return (session, battle.token, shown.low, original, shown.a, shown.b, message, self._progress_text(session))

    def _progress_text(self, session) -> str:
        n = self.arena.votes_cast(session) if self.arena else 0
        return f"Votes you have cast this session: **{n}**"

    def next_pair(self, session, token, progress=gr.Progress()):  # noqa: B008
        """A new blind pair for this judge (and a pseudonymous session id on the first call)."""
        return self._battle_outputs(session or new_session_id(), "", progress)

    def start_judging(self, session, token, progress=gr.Progress()):  # noqa: B008
        """On opening the Judge tab: a pair, unless one is already waiting for a vote."""
        if token and session:
            return (gr.skip(),) * 8
        return self.next_pair(session, token, progress)

    def vote(self, answer: str, session, token, progress=gr.Progress()):  # noqa: B008
        """Record a vote on the current pair, reveal the models, and show the next pair. `answer` is a
        button's label or one of A, B, tie, both_bad."""
        answer = ANSWERS.get(answer, answer)
        if self.arena is None:
            raise _error("Judging needs at least two models and one image.")
        result = self.arena.vote(token, session, answer)
        if result.keep_pair:
            gr.Warning(html.escape(result.message))
            return (session, token, gr.skip(), gr.skip(), gr.skip(), gr.skip(), result.message,
                    self._progress_text(session))
        if not result.accepted:
            gr.Warning(html.escape(result.message))
            return self._battle_outputs(session or new_session_id(), result.message, progress)
        b = result.battle
        reveal = (f"**You said {SAID[answer]}.** A was **{b.a.title}**, B was **{b.b.title}** "
                  f"(image `{b.image_id}`). Here is the next pair.")
        return self._battle_outputs(session, reveal, progress)

    # ---------------------------------------------------------------------------- Leaderboard

    def leaderboard(self):
        """(summary, ranking table, win-rate matrix)."""
        outcomes = self.store.outcome_counts()
        names = [m.entry.name for m in self.models]
        names += sorted({n for a, b, _, _ in outcomes for n in (a, b)} - set(names))
        board = fit_leaderboard(outcomes, names, rounds=self.settings.bootstrap_rounds)
        title = lambda n: self.titles.get(n, n)
        results = (self.evaluation or {}).get("results", {})
        psnr_rank = {n: i + 1 for i, n in enumerate(sorted((n for n in names if n in results),
                                                             key=lambda n: -results[n]["psnr_pooled"]))}
        rows = []
        for i in board.order():
            n, r = board.names[i], results.get(board.names[i])
            interval = (f"{board.lower[i]:.0f} – {board.upper[i]:.0f}" if np.isfinite(board.upper[i])
                        else f"— (under {MIN_VOTES} votes)")
            rows.append([int(board.rank[i]), title(n), round(float(board.rating[i])), interval, int(board.votes[i]),
                         f"{r['psnr_pooled']:.2f}" if r else "—", psnr_rank.get(n, "—"),
                         f"{r['ssim']:.4f}" if r else "—"])
        rates = board.win_rate()
        matrix = [[title(board.names[i])] + [
            "—" if i == j or board.games[i, j] == 0 else f"{rates[i, j]:.0%} of {int(board.games[i, j])}"
            for j in board.order()] for i in board.order()]
        headers = ["Model (row) beats (column)"] + [title(board.names[j]) for j in board.order()]
        return (self._leaderboard_summary(board.total_votes),
                gr.Dataframe(value=rows, headers=LEADERBOARD_HEADERS),
                gr.Dataframe(value=matrix, headers=headers))

    def _leaderboard_summary(self, total: int) -> str:
        lines = [(f"**{total}** valid votes. Bradley–Terry ratings (Elo scale, maximum likelihood; a tie or "
                  f"“both bad” counts as half a win each), with 95% bootstrap intervals over "
                  f"{self.settings.bootstrap_rounds} resamples of the votes. Models share a rank while their "
                  f"intervals overlap; a model with fewer than {MIN_VOTES} votes has no interval yet.")]
        if self.evaluation:
            ev = self.evaluation
            bicubic = ev["results"].get("bicubic")
            lines.append(f"PSNR (pooled) and SSIM: `{ev.get('command', 'python -m restoration.evaluate')}` on "
                         f"{ev.get('images', '?')} images" + (f"; bicubic scores {bicubic['psnr_pooled']:.2f} dB, "
                                                              f"SSIM {bicubic['ssim']:.4f}." if bicubic else "."))
        else:
            lines.append("No evaluation figures yet: run `python -m restoration.evaluate --json "
                         "weights/evaluation.json` to show PSNR and SSIM beside the human ranking.")
        return "\n\n".join(lines)

    def export_votes(self) -> str:
        """Every vote as a CSV file."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        file = self._new_output_folder() / f"votes-{stamp}.csv"
        self.store.write_csv(file)
        return str(file)


LEADERBOARD_HEADERS = ["Rank", "Model", "Rating", "95% interval", "Votes", "PSNR (dB)", "PSNR rank", "SSIM"]


def source_label(model) -> str:
    """"Hub org/repo @ 0123456789" or "local weights (sha256 0123abcd…)": which copy is serving."""
    if model.source == "hub":
        return f"Hub {model.entry.hub_repo} @ {model.revision[:10]}"
    fallback = f" ({model.fallback})" if model.fallback else ""  # e.g. "(not published yet)"
    return f"local `{model.entry.folder}` ({model.revision}){fallback}"


def score_table(panels: list[Panel], mode: str) -> str:
    if mode == "upscale":
        head = "| Panel | Size | Time (ms) |\n|---|---|---:|\n"
        return head + "\n".join(f"| {p.title} | {p.size[0]}×{p.size[1]} | "
                                f"{'' if p.ms is None else f'{p.ms:.0f}'} |" for p in panels)
    fmt = lambda v, spec: "—" if v is None else format(v, spec)
    head = "| Panel | PSNR (dB) | SSIM | Time (ms) | Size |\n|---|---:|---:|---:|---|\n"
    return head + "\n".join(f"| {p.title} | {fmt(p.psnr, '.2f')} | {fmt(p.ssim, '.4f')} | {fmt(p.ms, '.0f')} | "
                            f"{p.size[0]}×{p.size[1]} {p.note} |" for p in panels)


# -------------------------------------------------------------------------------------------- UI


def header_markdown(titles: list[str]) -> str:
    """The page's header, naming the models that were loaded (from weights/models.json), so that
    adding a model to the catalogue changes it."""
    names = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    return (f"# {TITLE}\n×2 super-resolution models from fast.ai lesson 23: {names}. Compare them on your own "
            "images, judge them blind, and see whether people agree with PSNR.")


def build_app(app: ArenaApp) -> gr.Blocks:
    s = app.settings
    # No analytics: the app calls no third party, and judges are not tracked.
    with gr.Blocks(title=TITLE, delete_cache=(OUTPUT_MAX_AGE_SECONDS, OUTPUT_MAX_AGE_SECONDS),
                   analytics_enabled=False) as demo:
        gr.Markdown(header_markdown([m.entry.title for m in app.models]), elem_id="header")
        gr.Markdown("Checkpoints: " + " · ".join(f"{m.entry.title}: {source_label(m)}" for m in app.models),
                    elem_id="sources")
        with gr.Accordion("Where each model came from", open=False):
            gr.Markdown("\n".join(f"- {html.escape(n)}" for n in app.notes))

        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    upload = gr.Image(label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                      format="png", elem_id="upload")
                    mode = gr.Radio(MODES, value="degrade", label="Mode",
                                    info="Degrade: the image is the original; it is downscaled ×2 and restored. "
                                         "Upscale: the image is the low-resolution input.")
                    run = gr.Button("Restore", variant="primary", elem_id="run")
                    gr.Markdown(f"Outputs over {s.tile_pixels / 1e6:.1f} megapixels are restored in tiles; the limit "
                                f"is {s.max_pixels / 1e6:.1f} megapixels of output.")
                    if app.examples:
                        gr.Examples([[str(p)] for p in app.examples], inputs=[upload], examples_per_page=12,
                                    label="Examples")
                with gr.Column(scale=3):
                    panels = []
                    for row in range(0, len(app.panel_keys), 3):
                        with gr.Row():
                            for key in app.panel_keys[row:row + 3]:
                                panels.append(gr.Image(label=app.titles[key], type="filepath", format="png",
                                                       interactive=False, elem_classes=["panel"], height=PANEL_HEIGHT,
                                                       elem_id=f"panel-{key}", buttons=["download", "fullscreen"]))
                    table = gr.Markdown(elem_id="scores")
            with gr.Row():
                left = gr.Dropdown(label="Zoom: left", choices=[], scale=1)
                right = gr.Dropdown(label="Zoom: right", choices=[], scale=1)
            slider = gr.ImageSlider(label="Zoom", format="png", type="pil", interactive=False, max_height=900,
                                    elem_classes=["panel"])
            files = gr.File(label="Download every output (PNG)", file_count="multiple", interactive=False)
            compared = gr.State(None)
            run.click(app.compare, [upload, mode], [*panels, table, files, slider, left, right, compared],
                      api_name="compare", preprocess=False, concurrency_id="models")
            for dropdown in (left, right):
                dropdown.input(app.zoom, [compared, left, right], slider, api_visibility="private")

        with gr.Tab("Judge") as judge_tab:
            gr.Markdown("Which restoration of the low-resolution input looks better? The models are hidden until "
                        "you vote. Look closely (use the fullscreen button), then answer.")
            progress_text = gr.Markdown(elem_id="judge-progress")
            with gr.Row():
                shown = {"interactive": False, "format": "png", "elem_classes": ["panel"], "height": JUDGE_HEIGHT,
                         "buttons": ["fullscreen"]}
                low = gr.Image(label="Low-resolution input", **shown)
                original = gr.Image(label="Original", visible=s.show_original, **shown)
                side_a = gr.Image(label="A", elem_id="side-a", **shown)
                side_b = gr.Image(label="B", elem_id="side-b", **shown)
            with gr.Row():
                buttons = [gr.Button(label, variant="primary" if label.endswith("better") else "secondary",
                                     elem_id=f"vote-{answer}") for label, answer in ANSWERS.items()]
            skip = gr.Button("Skip this pair", size="sm")
            reveal = gr.Markdown(elem_id="reveal")
            session, token = gr.State(None), gr.State(None)
            battle_outputs = [session, token, low, original, side_a, side_b, reveal, progress_text]
            judge_tab.select(app.start_judging, [session, token], battle_outputs, api_name="judge_on_open",
                             api_visibility="private", concurrency_id="models")
            skip.click(app.next_pair, [session, token], battle_outputs, api_name="judge", concurrency_id="models")
            for answer, button in zip(ANSWERS.values(), buttons):
                button.click(app.vote, [button, session, token], battle_outputs, api_name=f"vote_{answer}",
                             api_visibility="private", concurrency_id="models", trigger_mode="once")
            # The API's way to vote (a client cannot press a button): /vote with the answer as text.
            answer_text = gr.Textbox(visible=False, label="answer")
            answer_text.submit(app.vote, [answer_text, session, token], battle_outputs, api_name="vote",
                               concurrency_id="models")

        with gr.Tab("Leaderboard") as board_tab:
            summary = gr.Markdown(elem_id="board-summary")
            ranking = gr.Dataframe(headers=LEADERBOARD_HEADERS, interactive=False, elem_id="ranking")
            gr.Markdown("Win rates from the votes (ties count half):")
            matrix = gr.Dataframe(interactive=False, elem_id="win-rates")
            with gr.Row():
                refresh = gr.Button("Refresh", size="sm")
                export = gr.Button("Export all votes (CSV)", size="sm")
            csv_file = gr.File(label="Votes (CSV)", interactive=False)
            board_tab.select(app.leaderboard, None, [summary, ranking, matrix], api_name="leaderboard_on_open",
                             api_visibility="private", concurrency_id="leaderboard")
            refresh.click(app.leaderboard, None, [summary, ranking, matrix], api_name="leaderboard",
                          concurrency_id="leaderboard")
            export.click(app.export_votes, None, csv_file, api_name="export_votes", concurrency_id="leaderboard")
    return demo


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Start serving through the queue: at most `settings.concurrency` model runs at a time (each
    uses `settings.threads` cores), so heavy requests wait their turn instead of fighting over cores."""
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=64)
    # The largest upload worth receiving: an uncompressed 16-bit RGBA image at the pixel limit.
    max_file_size = settings.max_pixels * 8 + (1 << 20)
    return demo.launch(css=CSS, max_file_size=max_file_size, run_history=False, **kwargs)


def main():
    settings = Settings.from_env()
    torch.set_num_threads(settings.threads)
    try:
        models, problems = load_available_restorers(settings.weights_dir, settings.model_source)
    except CheckpointError as e:
        raise SystemExit(f"Cannot start: {e}") from None
    if not models:
        raise SystemExit(f"Cannot start: no restorer in {settings.weights_dir}/models.json could be loaded.\n"
                         + "\n".join(problems) + "\nTrain and export the models, or set RESTORATION_WEIGHTS_DIR.")
    for line in [m.note for m in models] + problems:
        print(line)
    sync = start_vote_sync(settings)  # before the store opens the database: it may restore it
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a Space stops with SIGTERM: close, push the votes
    try:
        launch(build_app(ArenaApp(settings, models, problems)), settings)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sync:
            sync.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
