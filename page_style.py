"""The page's CSS and the Judge's script, for app.py: how the pictures are shown."""

from restoration.arena.app_state import JUDGE_VIEW
from restoration.arena.scene_crops import MAX_ZOOM

# Panels are shown enlarged without smoothing: a browser's bilinear zoom would hide the very
# differences between the models that the page is for. A panel's caption sits above its picture,
# not over it (Gradio floats it over the top 20 px: a third of a 64×64 image), on one line, and
# the picture takes the rest of the panel's fixed height (the Judge's thumbnails), so the panels
# of a row align. Compare's panels have no fixed height: each is as tall as its picture at the
# panel's width (a fixed height left blank bands under wide pictures, and Upscale's top row, two
# panels wide, had pictures of another size than the models' row); an empty one keeps some room
# while its model runs.
CSS = """
.panel img { image-rendering: pixelated; }
.panel > label[data-testid="block-label"] { position: static; max-width: 100%; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.panel:has(> label[data-testid="block-label"]) .image-container { height: calc(100% - 26px) !important; }
.panel .image-frame { width: 100%; height: 100%; }
.panel .image-frame img { width: 100%; height: 100%; object-fit: contain; }
.compare-panel.panel .image-container, .compare-panel.panel .image-frame { height: auto !important; }
.compare-panel.panel .image-frame img { height: auto; max-height: 80vh; }
.compare-panel.panel .empty { min-height: 200px; }
"""
# The Judge's pictures are shown at their own pixels times an integer zoom (the server sets the
# class zoom-<n>: judge_tab.JudgeTab._pictures), never fitted to their box: a fitted picture is
# resampled by the browser, which blurs or sharpens the very differences a judge looks for. The
# box scrolls where a narrow screen cannot hold the picture; the caption sits above the picture.
JUDGE_CSS = f"""
.{JUDGE_VIEW} > label[data-testid="block-label"] {{ position: static; max-width: 100%; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }}
.{JUDGE_VIEW} .image-container {{ overflow: auto; }}
.{JUDGE_VIEW} .image-frame {{ width: auto; height: auto; }}
.{JUDGE_VIEW} img {{ image-rendering: pixelated; width: auto !important; height: auto !important;
  max-width: none !important; max-height: none !important; object-fit: none !important; }}
.{JUDGE_VIEW}.fullscreen img {{ zoom: var(--fit-zoom, 1) !important; }}
""" + "".join(f".{JUDGE_VIEW}.zoom-{z} img {{ zoom: {z}; }}\n" for z in range(1, 2 * MAX_ZOOM + 1))
# Fullscreen (Gradio's button puts the picture's block over the whole window) shows the picture at
# the largest integer zoom that fits the window, still without smoothing: set as --fit-zoom when
# the block goes fullscreen, from the picture's own size.
JUDGE_HEAD = f"""<script>
new MutationObserver(changes => {{
  for (const change of changes) {{
    const block = change.target;
    if (!(block instanceof HTMLElement) || !block.classList.contains("{JUDGE_VIEW}")) continue;
    const img = block.querySelector("img");
    if (!img || !img.naturalWidth) continue;
    const fit = Math.floor(Math.min(window.innerWidth / img.naturalWidth, (window.innerHeight - 60) / img.naturalHeight));
    block.style.setProperty("--fit-zoom", Math.max(1, fit));
  }}
}}).observe(document.documentElement, {{attributes: true, attributeFilter: ["class"], subtree: true}});
</script>"""
