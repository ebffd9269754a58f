"""The Gradio app: compare the super-resolution U-Nets side by side, judge them blind in pairs,
and see the human ranking beside PSNR.

    python app.py          # then open the address it prints

The same file is the `app_file` of the Hugging Face Space. Settings come from environment
variables (restoration/settings.py); models are loaded once, in `main`, never at import. This file
only wires the page to `restoration.arena.app_state.ArenaApp`, whose handlers return their outputs by
name (`on` turns them into Gradio's {component: value}).
"""

import html
import inspect
import logging
import signal
import time

import gradio as gr
from gradio.utils import get_upload_folder

import restoration  # noqa: F401  first: one clear line, not a traceback, on Python < 3.11
from page_style import CSS, JUDGE_CSS, JUDGE_HEAD
from restoration.arena.app_state import (
    JUDGE_LANE_LIMIT,
    JUDGE_OUTPUTS,
    JUDGE_VIEW,
    ZOOM_LABEL,
    ArenaApp,
    Refusal,
    Update,
    freeze_heap,
)
from restoration.arena.scene_crops import MAX_ZOOM
from restoration.arena.startup import StartError, checked_settings, start_arena
from restoration.arena.store import ANSWER_LABELS
from restoration.arena.submissions import DEFAULT_FAMILY, submit_help
from restoration.data import degrade
from restoration.data.degrade import MODES
from restoration.hub.catalogue import FAMILIES, space_of
from restoration.hub.provenance import header_markdown, source_label
from restoration.inference.compare import UNSURE_BELOW
from restoration.settings import Settings

log = logging.getLogger("app")

TITLE = "Super-resolution arena"
COMPARE_WAITING_ROOM = 8  # Compare requests admitted past Gradio's queue (running or waiting for the models)
BROWSER_KEY = "super-resolution-arena-judge"  # localStorage key of the judge's browser id
THUMB_HEIGHT = 140  # the pair just judged, above the next one


def on(handler, outputs: dict):
    """`handler` (an ArenaApp method returning or yielding its outputs by name) as Gradio calls it:
    its named outputs become {component: value} (an `Update` a `gr.update`; what it leaves out
    stays as it is), a `Refusal` is shown in the page (and logged as one line, not a traceback),
    and its "warning" entry is shown as a warning. The request and a progress bar are passed to the
    handlers that take them; Gradio adds both after the inputs."""
    takes = {"request", "progress"} & set(inspect.signature(handler).parameters)

    def call(args):
        if "progress" in takes:
            *inputs, request, progress = args
            return handler(*inputs, **({"request": request} if "request" in takes else {}), progress=progress)
        *inputs, request = args
        return handler(*inputs, **({"request": request} if "request" in takes else {}))

    def view(result: dict) -> dict:
        if warning := result.get("warning"):
            log.info("refused: %s", warning)
            gr.Warning(html.escape(warning))
        shown = {outputs[k]: gr.update(**v.properties()) if isinstance(v, Update) else v
                 for k, v in result.items() if k != "warning"}
        return shown or gr.skip()  # Gradio reads an empty dict as one output's value

    def refused(e: Refusal) -> gr.Error:
        log.info("refused: %s", e)
        return gr.Error(html.escape(str(e)), print_exception=False)  # the modal renders HTML; a file name must not

    if inspect.isgeneratorfunction(handler):
        def run(*args):
            try:
                for result in call(args):
                    yield view(result)
            except Refusal as e:
                raise refused(e) from None
    else:
        def run(*args):
            try:
                return view(call(args))
            except Refusal as e:
                raise refused(e) from None
    names = [p for p in inspect.signature(handler).parameters.values() if p.name not in takes]
    run.__signature__ = inspect.Signature(  # what Gradio reads to pass the request and a progress bar
        [p.replace(kind=p.POSITIONAL_OR_KEYWORD) for p in names]
        + [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)]
        + [inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())
           for _ in ["progress"] if "progress" in takes])
    run.__annotations__ = {"request": gr.Request}
    run.__name__ = handler.__name__
    return run


def build_app(app: ArenaApp) -> gr.Blocks:
    """The page: a header, then one tab per builder below. Each handler's outputs are named (the
    Judge's are JUDGE_OUTPUTS); `on` maps the names to the components."""
    # No analytics: the app calls no third party, and judges are not tracked.
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        header(app)
        browser = browser_id(app, demo)
        with gr.Tab("Compare"):
            compare_tab(app)
        with gr.Tab("Judge") as tab:
            judge_tab(app, tab, browser)
        with gr.Tab("Leaderboard") as tab:
            leaderboard_tab(app, tab)
        with gr.Tab("Submit"):  # community models: restoration/arena/submissions.py, docs/submitting.md
            submit_tab(app, browser)
    return demo


def header(app: ArenaApp):
    gr.Markdown(header_markdown(TITLE, [m.entry.title for m in app.models]), elem_id="header")
    gr.Markdown("Checkpoints: " + " · ".join(f"{m.entry.title}: {source_label(m)}" for m in app.models),
                elem_id="sources")
    with gr.Accordion("Where each model came from", open=False):
        gr.Markdown(app.provenance(), elem_id="provenance")


def browser_id(app: ArenaApp, demo: gr.Blocks) -> gr.State:
    """The judge's browser id, kept in localStorage so that a new session (a reload) is the same
    judge; copied into a State on load so the API's endpoints do not ask for it. Outside the tabs:
    a component in a tab not yet shown is not mounted, and would not read its storage."""
    stored_browser, browser = gr.BrowserState(None, storage_key=BROWSER_KEY), gr.State(None)
    demo.load(on(app.remember_browser, {"browser": browser, "stored_browser": stored_browser}), stored_browser,
              [browser, stored_browser], api_visibility="private", queue=False)
    return browser


def compare_tab(app: ArenaApp):
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            upload, choice, run = compare_inputs(app)
        with gr.Column(scale=3):
            panels = compare_panels(app)
            table = gr.Markdown(elem_id="scores")
    # The zoom and the PNG downloads are made when asked for: a Compare sends neither (two more
    # full-size pictures, and a second encoding of every panel, that most people never open).
    with gr.Row(equal_height=True):
        left = gr.Dropdown(label="Zoom: left", choices=[], scale=2)
        right = gr.Dropdown(label="Zoom: right", choices=[], scale=2)
        zoom_in = gr.Button("Zoom in", scale=1, elem_id="zoom-in")
    slider = gr.ImageSlider(label=ZOOM_LABEL, format="png", type="pil", interactive=False, max_height=900,
                            elem_classes=["panel"], elem_id="zoom")
    make_downloads = gr.Button("Download every output (PNG)", size="sm", elem_id="downloads")
    files = gr.File(label="Every output, lossless PNG", file_count="multiple", interactive=False)
    compared = gr.State(None)
    named = {f"panel-{k}": panels[k] for k in app.panel_keys} | {
        "table": table, "files": files, "zoom": slider, "left": left, "right": right, "compared": compared}
    # Compare itself sets neither the downloads nor the zoom (the click's first event clears them).
    streamed = [c for k, c in named.items() if k not in ("files", "zoom")]
    # Not preprocessed: Gradio's own check of an upload that is no image prints a traceback. In
    # the queue: a warning shows in the page only there.
    upload.change(on(app.suggest_family, {"family": choice["family"], "upload": upload}), upload,
                  [choice["family"], upload], api_visibility="private", preprocess=False, concurrency_limit=None)
    # The page is cleared first, outside the queue, so that nothing of the last image stays on
    # screen while the new one streams in or beside a refusal.
    run.click(on(app.cleared, named), choice["family"], list(named.values()), queue=False, show_progress="hidden",
              api_visibility="private").then(
        on(app.compare, named), [upload] + [choice[k] for k in ("mode", "degradation", "show_classes", "family")],
        streamed, api_name="compare", preprocess=False, concurrency_id="compare",
        concurrency_limit=app.settings.concurrency + COMPARE_WAITING_ROOM, show_progress_on=table)
    zoom_in.click(on(app.zoom, named), [compared, left, right], slider, api_name="zoom")  # first: its name
    for dropdown in (left, right):
        dropdown.input(on(app.zoom, named), [compared, left, right], slider, api_visibility="private")
    make_downloads.click(on(app.downloads, named), compared, files, api_name="downloads")


def compare_inputs(app: ArenaApp) -> tuple[gr.Image, dict, gr.Button]:
    """The upload, the choices by name (mode, degradation, family, show_classes) and Restore."""
    upload = gr.Image(label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                      format="png", elem_id="upload")
    choice = {"mode": gr.Radio([(label, value) for value, label in MODES.items()], value="degrade", label="Mode",
                               info="Degrade: the image is the original; it is downscaled ×2 and restored. "
                                    "Upscale: the image is the low-resolution input.")}
    choice["degradation"] = gr.Dropdown([(degrade.title(d), d) for d in degrade.STANDARD], value="lesson",
                                        label="How the low-resolution image is made (Degrade mode)",
                                        info="The lesson's bilinear, an editor's bicubic, or bilinear then a "
                                             "JPEG thumbnail: see how each model copes.")
    choice["family"] = gr.Radio([(FAMILIES[f], f) for f in app.families], value=app.default_family,
                                label="Models trained on", visible=len(app.families) > 1, elem_id="family",
                                info="Photos: U-Nets trained on full-resolution photo patches. Tiny ImageNet: "
                                     "the lesson's U-Nets, trained on 64×64 thumbnails.")
    # Off by default: a Tiny ImageNet classifier names *some* class for any picture ("Chihuahua"
    # for an astronaut), which alarms more than it informs on first contact.
    choice["show_classes"] = gr.Checkbox(value=False, visible=app.fidelity is not None, elem_id="show-classes",
                                         label="Add the fidelity classifier's Tiny ImageNet class to the table",
                                         info="The independent fidelity classifier's top class of Tiny ImageNet's "
                                              "200 (small pictures of one object) for each panel, with its "
                                              f"probability; marked unsure under {UNSURE_BELOW:.0%}. Meaningless "
                                              "for photos unlike those.")
    run = gr.Button("Restore", variant="primary", elem_id="run")
    runner = next(iter(app.restorers.values()))
    window = runner.window * runner.scale  # the runner counts its window in low-resolution pixels
    gr.Markdown(f"Large images are restored in overlapping {window}-pixel tiles; the limit is "
                f"{app.settings.max_pixels / 1e6:.1f} megapixels of output. Panels appear as each is ready.")
    if app.examples:
        gr.Examples([[str(p)] for p in app.examples], inputs=[upload], examples_per_page=12, label="Examples")
    return upload, choice, run


def compare_panels(app: ArenaApp) -> dict[str, gr.Image]:
    """key → panel: the input, bicubic and the original on top; each family's models on a row of
    their own (Compare shows one family, so the other's row is hidden)."""
    rows = [["input", "bicubic", "original"]] + [[m.entry.name for m in ms] for ms in app.families.values()]
    shown = set(rows[0]) | {m.entry.name for m in app.families[app.default_family]}
    panels = {}
    for row in rows:
        with gr.Row():
            for key in row:
                panels[key] = gr.Image(label=app.titles[key], type="filepath", format="png", interactive=False,
                                       elem_classes=["panel", "compare-panel"], elem_id=f"panel-{key}",
                                       buttons=["download", "fullscreen"], visible=key in shown)
    return panels


def judge_tab(app: ArenaApp, tab: gr.Tab, browser: gr.State):
    gr.Markdown("Which restoration of the low-resolution input looks better? The models are hidden until you "
                "vote. Look closely, then answer. Pictures are shown at their own pixels, never smoothed or "
                "sharpened by the browser: photo crops 1:1, Tiny ImageNet thumbnails enlarged "
                f"{MAX_ZOOM}× with each pixel drawn as a square; the low-resolution input beside them at the "
                "same scale (each of its pixels covers 2×2 of theirs). The fullscreen button shows a picture "
                "at the largest whole-number zoom that fits your window.", elem_id="judge-help")
    judged = {"progress": gr.Markdown(elem_id="judge-progress")}  # the outputs by name: JUDGE_OUTPUTS
    # The pair just judged, with its models' names, sits here, above the next pair: the reveal
    # belongs to the pictures it describes.
    with gr.Row(elem_id="judged"):
        thumb = {"interactive": False, "format": "png", "elem_classes": ["panel"], "height": THUMB_HEIGHT,
                 "visible": False, "buttons": [], "min_width": 120}
        judged["judged_a"] = gr.Image(label="A", elem_id="judged-a", scale=1, **thumb)
        judged["judged_b"] = gr.Image(label="B", elem_id="judged-b", scale=1, **thumb)
        judged["reveal"] = gr.Markdown(elem_id="reveal")
    with gr.Row(elem_id="judge-pair"):
        shown = {"interactive": False, "format": "png", "elem_classes": [JUDGE_VIEW], "min_width": 330,
                 "buttons": ["fullscreen"]}
        judged["low"] = gr.Image(label="Low-resolution input", elem_id="judge-low", **shown)
        judged["original"] = gr.Image(label="Original", visible=app.settings.show_original,
                                      elem_id="judge-original", **shown)
        judged["side_a"] = gr.Image(label="A", elem_id="side-a", **shown)
        judged["side_b"] = gr.Image(label="B", elem_id="side-b", **shown)
    with gr.Row():
        buttons = {answer: gr.Button(label, variant="primary" if label.endswith("better") else "secondary",
                                     elem_id=f"vote-{answer}") for label, answer in ANSWER_LABELS.items()}
    skip = gr.Button("Skip this pair", size="sm")
    judged |= {"session": gr.State(None), "token": gr.State(None), "shown": gr.State(None)}
    outputs = [judged[name] for name in JUDGE_OUTPUTS]  # in the API's order
    pair = [judged["session"], judged["token"], browser]
    # The judge's lane: no model runs here (the scene pool renders ahead), so a judge never waits
    # behind a Compare request.
    lane = {"concurrency_id": "judge", "concurrency_limit": JUDGE_LANE_LIMIT}
    tab.select(on(app.start_judging, judged), pair, outputs, api_name="judge_on_open", api_visibility="private",
               **lane)
    skip.click(on(app.next_pair, judged), pair, outputs, api_name="judge", **lane)
    for answer, button in buttons.items():
        button.click(on(app.vote, judged), [button, *pair, judged["shown"]], outputs, api_name=f"vote_{answer}",
                     api_visibility="private", trigger_mode="once", **lane)
    # The API's way to vote (a client cannot press a button): /vote with the answer as text.
    answer_text = gr.Textbox(visible=False, label="answer")
    answer_text.submit(on(app.vote, judged), [answer_text, *pair, judged["shown"]], outputs, api_name="vote", **lane)


def leaderboard_tab(app: ArenaApp, tab: gr.Tab):
    # One family's board at a time, photos first: its own votes, models and witnesses.
    family = gr.Radio([(FAMILIES[f], f) for f in app.boards], value=app.boards[0],
                      label="The leaderboard of the models trained on", elem_id="board-family",
                      visible=len(app.boards) > 1)
    which = gr.Radio([("All degradations", "all")] + [(degrade.title(d), d) for d in degrade.STANDARD],
                     value="all", label="Votes on inputs degraded by", elem_id="board-degradation")
    board = {"summary": gr.Markdown(elem_id="board-summary"),
             "ranking": gr.Dataframe(interactive=False, wrap=True, elem_id="ranking")}
    with gr.Accordion("Win rates from the votes (ties count half)", open=False, elem_id="win-rates-toggle"):
        board["matrix"] = gr.Dataframe(interactive=False, wrap=True, elem_id="win-rates")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm")
        export = gr.Button("Export all votes (CSV)", size="sm")
    csv_file = gr.File(label="Votes (CSV)", interactive=False)
    lane = {"concurrency_id": "leaderboard", "concurrency_limit": 2}
    shown, outputs = on(app.leaderboard, board), list(board.values())
    tab.select(shown, [which, family], outputs, api_name="leaderboard_on_open", api_visibility="private", **lane)
    refresh.click(shown, [which, family], outputs, api_name="leaderboard", **lane)
    for choice in (which, family):
        choice.input(shown, [which, family], outputs, api_visibility="private", **lane)
    export.click(on(app.export_votes, {"csv": csv_file}), None, csv_file, api_name="export_votes", **lane)


def submit_tab(app: ArenaApp, browser: gr.State):
    gr.Markdown(submit_help(space_of(app.settings.weights_dir)), elem_id="submit-help")
    with gr.Row():
        spec = gr.Textbox(label="Hub model repo at a commit", placeholder="owner/name@<40-character commit>")
        family = gr.Radio([(t, f) for f, t in FAMILIES.items()], value=DEFAULT_FAMILY,
                          label="Competes in (scored on its images, judged beside its models)", elem_id="submit-family")
    send = gr.Button("Submit", variant="primary")
    result = {"outcome": gr.Markdown(elem_id="submission"), "preview": gr.Gallery(label="On an example", columns=4)}
    send.click(on(app.submit, result), [spec, family, browser], list(result.values()), api_name="submit",
               concurrency_id="compare")


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Start serving through the queue. Each event names its lane (concurrency_id): Compare runs the
    models (`CompareLane` bounds them at `settings.concurrency`, each using `settings.threads`
    cores), Judge only serves pre-rendered pairs, the leaderboard fits ratings."""
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=256)
    # The largest upload worth receiving: an uncompressed 16-bit RGBA image at the pixel limit.
    max_file_size = settings.max_pixels * 8 + (1 << 20)
    # It returns once the server runs (the caller's thread then serves the torch work: main).
    return demo.launch(css=CSS + JUDGE_CSS, head=JUDGE_HEAD, max_file_size=max_file_size, run_history=False,
                       **{"prevent_thread_lock": True} | kwargs)


def main():
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # our one-line refusals; not every HTTP request of the libraries
    logging.getLogger("restoration.arena.compare_tab").setLevel(logging.INFO)  # where each Compare's time went
    try:
        settings, device = checked_settings()
        # Gradio serves our files from its upload folder as they are.
        app, sync = start_arena(settings, device, outputs_in=get_upload_folder())
    except StartError as e:
        raise SystemExit(f"Cannot start: {e}") from None
    # This thread loaded the models; it runs every Compare and the warm-up too (torch_thread.py).
    app.torch_thread.claim()
    if settings.fast:
        # The page serves at once; until this finishes, requests run the models eagerly (between
        # one model's compile and the next: both run on this thread).
        print("fast path: warming up in the background", flush=True)
        app.warm_up(lambda seconds: warmed_up(app, seconds, started))
    demo = build_app(app)
    app.files.served = lambda: served_copies(demo)  # swept with our own files, by age and on exit
    freeze_heap()  # what start-up built lives as long as the app: out of the garbage collector's walks
    # A Space (or a service manager) stops the app with SIGTERM: end it like Ctrl-C, so that the
    # temporary files are removed and the votes pushed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(demo, settings)
        app.torch_thread.serve(lambda: demo.is_running)  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        print("Keyboard interruption in main thread... closing server.", flush=True)
    finally:
        demo.close()
        signal.signal(signal.SIGTERM, previous)
        app.close()
        if sync:
            sync.close()


def warmed_up(app: ArenaApp, seconds: float, started: float):
    freeze_heap()  # the compiled fast path too lives as long as the app
    print(f"fast path: warmed up in {seconds:.1f} s ({time.perf_counter() - started:.1f} s after start-up); "
          + "; ".join(f"{n}: {r.status}" for n, r in app.restorers.items()), flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def served_copies(demo: gr.Blocks) -> list[str]:
    """The copies Gradio made in its cache of the files this app served (kept after Ctrl-C)."""
    return [file for files in demo.temp_file_sets for file in list(files)]


if __name__ == "__main__":
    main()
