// Atelier's zoomable artwork viewer: pan and zoom over the tile pyramid that the app serves
// at /artworks/N/tiles/LEVEL/COL_ROW.png (level 0 at full size, each next level half as big),
// loading only the tiles in view, so that a print-size artwork is looked at without
// downloading it whole. Drag to pan, wheel or +/- to zoom, "1:1" for the artwork's own pixels.
"use strict";

function Zoom(box) {
  const W = +box.dataset.width, H = +box.dataset.height, T = +box.dataset.tile;
  const levels = +box.dataset.levels, base = box.dataset.tiles, top = levels - 1;
  const stage = document.createElement("div");
  stage.className = "zoom-stage";
  box.appendChild(stage);
  // The coarsest level (one tile) under everything, so that no part is blank while tiles load.
  const backdrop = new Image();
  backdrop.className = "zoom-backdrop";
  backdrop.alt = "";
  backdrop.src = `${base}/${top}/0_0.png`;
  stage.appendChild(backdrop);
  const shown = new Map();
  let scale = 1, x0 = 0, y0 = 0; // screen px per artwork px; the artwork point at the box's top left

  const view = () => [box.clientWidth, box.clientHeight];
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

  function fitScale() {
    const [w, h] = view();
    return Math.min(w / W, h / H, 1);
  }

  function zoomTo(newScale, cx, cy) { // keep the artwork point under screen point (cx, cy) in place
    const px = x0 + cx / scale, py = y0 + cy / scale;
    scale = clamp(newScale, Math.min(fitScale(), 1) / 2, 8);
    x0 = px - cx / scale;
    y0 = py - cy / scale;
    draw();
  }

  function draw() {
    const [w, h] = view();
    const spanX = w / scale, spanY = h / scale; // keep some of the artwork in view
    x0 = clamp(x0, Math.min(0, W - spanX), Math.max(0, W - spanX));
    y0 = clamp(y0, Math.min(0, H - spanY), Math.max(0, H - spanY));
    if (scale === 1) { x0 = Math.round(x0); y0 = Math.round(y0); } // 1:1 on whole pixels, never resampled
    const level = clamp(Math.floor(Math.log2(1 / scale) + 1e-9), 0, top);
    const f = 2 ** level, levelW = Math.ceil(W / f), levelH = Math.ceil(H / f);
    const at = (v, origin) => Math.round((v - origin) * scale); // artwork px to screen px
    backdrop.style.cssText = `left:${at(0, x0)}px;top:${at(0, y0)}px;width:${at(W, x0) - at(0, x0)}px;` +
                             `height:${at(H, y0) - at(0, y0)}px`;
    const wanted = new Set();
    const c0 = Math.max(0, Math.floor(x0 / f / T)), c1 = Math.min(Math.ceil(levelW / T) - 1, Math.floor((x0 + spanX) / f / T));
    const r0 = Math.max(0, Math.floor(y0 / f / T)), r1 = Math.min(Math.ceil(levelH / T) - 1, Math.floor((y0 + spanY) / f / T));
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const key = `${level}/${c}_${r}`;
        wanted.add(key);
        let img = shown.get(key);
        if (!img) {
          img = new Image();
          img.className = "zoom-tile";
          img.alt = "";
          img.draggable = false;
          img.dataset.level = level;
          img.src = `${base}/${key}.png`;
          stage.appendChild(img);
          shown.set(key, img);
        }
        const left = c * T * f, right = Math.min(W, (c + 1) * T * f);
        const upper = r * T * f, lower = Math.min(H, (r + 1) * T * f);
        img.style.cssText = `left:${at(left, x0)}px;top:${at(upper, y0)}px;` +
                            `width:${at(right, x0) - at(left, x0)}px;height:${at(lower, y0) - at(upper, y0)}px`;
      }
    }
    for (const [key, img] of shown) {
      if (!wanted.has(key)) { img.remove(); shown.delete(key); }
    }
    // Where the view is, for the browser test and for anyone reading the page's state.
    box.dataset.view = `${x0} ${y0} ${scale}`;
    box.querySelector(".zoom-scale").textContent = `${Math.round(scale * 100)} %`;
  }

  function fit() {
    const [w, h] = view();
    scale = fitScale();
    x0 = (W - w / scale) / 2;
    y0 = (H - h / scale) / 2;
    draw();
  }

  const controls = document.createElement("div");
  controls.className = "zoom-controls";
  for (const [label, act] of [["Fit", fit], ["1:1", () => { const [w, h] = view(); zoomTo(1, w / 2, h / 2); }],
                              ["+", () => { const [w, h] = view(); zoomTo(scale * 2, w / 2, h / 2); }],
                              ["\u2212", () => { const [w, h] = view(); zoomTo(scale / 2, w / 2, h / 2); }]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", act);
    controls.appendChild(button);
  }
  const shownScale = document.createElement("span");
  shownScale.className = "zoom-scale";
  controls.appendChild(shownScale);
  box.appendChild(controls);

  box.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = box.getBoundingClientRect();
    zoomTo(scale * (event.deltaY < 0 ? 1.25 : 0.8), event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });
  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    x0 -= (event.clientX - drag.x) / scale;
    y0 -= (event.clientY - drag.y) / scale;
    drag = { x: event.clientX, y: event.clientY };
    draw();
  });
  stage.addEventListener("pointerup", () => { drag = null; });
  window.addEventListener("resize", draw);
  box.classList.add("zoom-on");
  fit();
}

document.querySelectorAll(".zoom[data-tiles]").forEach(Zoom);
