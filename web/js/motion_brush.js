// The drawing canvas of MotionBrush: arrows, anchors and painted regions on the picture.
// What is drawn lives, as JSON (schema version 1, see the README), in the node's ordinary
// "drawing" STRING widget: the canvas only edits that text, so API users send the same thing.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NODE = "MotionBrush";
const PICTURE_KEY = "t2c_picture"; // the ui entry MotionBrush returns the picture in
const MODES = ["arrow", "anchor", "region", "erase"];
const CANVAS_HEIGHT = 300;
const EXAMPLE_PICTURE_ROUTE = "/t2c/example_picture"; // nodes/examples.py PICTURE_ROUTE
const FOLLOW_MS = 500;

function parse(text) {
  try {
    const data = JSON.parse(text);
    if (data && typeof data === "object" && data.version === 1) {
      return { arrows: [], anchors: [], regions: [], ...data };
    }
  } catch (error) {
    // a hand-edited, broken drawing: start a fresh one (the server names the error if queued as is)
  }
  return { version: 1, width: 512, height: 512, arrows: [], anchors: [], regions: [] };
}

// The /view address of a LoadImage value: "name.png", "sub/name.png" or "name.png [output]".
function viewURL(value) {
  const [, path, type] = /^(.*?)(?: \[(input|output|temp)\])?$/.exec(value);
  const cut = path.lastIndexOf("/");
  const query = { filename: path.slice(cut + 1), subfolder: cut >= 0 ? path.slice(0, cut) : "", type: type || "input" };
  return api.apiURL(`/view?${new URLSearchParams(query)}`);
}

// Where the picture connected to the node's "image" input can be seen before any run, or null.
function upstreamPicture(node) {
  const slot = node.inputs?.findIndex((input) => input.name === "image") ?? -1;
  let source = slot >= 0 ? node.getInputNode?.(slot) : null;
  while (source?.type === "Reroute") source = source.getInputNode?.(0);
  const value = (name) => source?.widgets?.find((w) => w.name === name)?.value;
  if (source?.type === "LoadImage" && value("image")) return viewURL(String(value("image")));
  if (source?.type === "T2CExampleImage" && value("example")) {
    return api.apiURL(`${EXAMPLE_PICTURE_ROUTE}?${new URLSearchParams({ name: value("example") })}`);
  }
  return null;
}

function round(value) {
  return Math.round(value * 10) / 10;
}

class DrawingCanvas {
  constructor(node, widget) {
    this.node = node;
    this.widget = widget; // the "drawing" STRING widget
    this.mode = "arrow";
    this.undoStack = [];
    this.picture = null;
    this.followed = null; // the upstream picture's address last shown
    this.pending = null; // the arrow or stroke being dragged
    this.element = document.createElement("div");
    this.element.className = "t2c-motion-brush";
    Object.assign(this.element.style, { display: "flex", flexDirection: "column", gap: "4px", width: "100%" });
    this.element.append(this.toolbar());
    this.canvas = document.createElement("canvas");
    this.canvas.className = "t2c-drawing-canvas";
    Object.assign(this.canvas.style, { width: "100%", height: CANVAS_HEIGHT + "px", cursor: "crosshair" });
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.element.append(this.canvas);
    // the editor sizes and shows the element after creation (and on every node resize)
    new ResizeObserver(() => this.redraw()).observe(this.canvas);
    this.redraw();
  }

  toolbar() {
    const bar = document.createElement("div");
    Object.assign(bar.style, { display: "flex", gap: "4px", flexWrap: "wrap", fontSize: "11px" });
    const button = (label, title, action) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.dataset.action = label.toLowerCase();
      b.addEventListener("click", (e) => {
        e.preventDefault();
        action();
      });
      bar.append(b);
      return b;
    };
    this.modeButtons = MODES.map((mode) =>
      button(mode[0].toUpperCase() + mode.slice(1), `Mode: ${mode} (shift-click always places an anchor)`, () => {
        this.mode = mode;
        this.redraw();
      })
    );
    button("Undo", "Undo the last change", () => this.undo());
    button("Clear", "Remove every arrow, anchor and painted stroke", () =>
      this.change((d) => Object.assign(d, { arrows: [], anchors: [], regions: [] }))
    );
    const file = document.createElement("input");
    file.type = "file";
    file.accept = "image/*";
    file.style.display = "none";
    file.addEventListener("change", () => file.files[0] && this.loadFile(file.files[0]));
    bar.append(file);
    const hint = "Draw on a picture from this computer (a connected Load Image or example shows by itself)";
    button("Picture", hint, () => file.click());
    return bar;
  }

  get drawing() {
    return parse(this.widget.value);
  }

  store(drawing) {
    this.widget.value = JSON.stringify(drawing);
    this.widget.callback?.(this.widget.value);
    this.redraw();
  }

  change(edit) {
    const drawing = this.drawing;
    this.undoStack.push(JSON.stringify(drawing));
    edit(drawing);
    this.store(drawing);
  }

  undo() {
    if (this.undoStack.length) {
      this.widget.value = this.undoStack.pop();
      this.widget.callback?.(this.widget.value);
      this.redraw();
    }
  }

  // --- the picture -------------------------------------------------------------------------------

  showPicture(source) {
    const image = new Image();
    image.onload = () => {
      this.picture = image;
      const drawing = this.drawing;
      const sx = image.naturalWidth / drawing.width;
      const sy = image.naturalHeight / drawing.height;
      if (sx !== 1 || sy !== 1) this.store(rescale(drawing, sx, sy, image));
      else this.redraw();
    };
    image.src = source;
  }

  // the upstream picture when it changes (a run's picture replaces it until it changes again)
  follow(source) {
    if (source && source !== this.followed) this.showPicture(source);
    this.followed = source;
  }

  loadFile(file) {
    const reader = new FileReader();
    reader.onload = () => this.showPicture(reader.result);
    reader.readAsDataURL(file);
  }

  // --- pointer -------------------------------------------------------------------------------------

  frame() {
    // where the drawing's width x height rectangle sits in the canvas, letterboxed
    const { width, height } = this.drawing;
    const cw = this.canvas.clientWidth || 1;
    const ch = this.canvas.clientHeight || 1;
    const scale = Math.min(cw / width, ch / height);
    return { scale, left: (cw - width * scale) / 2, top: (ch - height * scale) / 2 };
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const { scale, left, top } = this.frame();
    const { width, height } = this.drawing;
    // the editor zooms DOM widgets with a CSS transform: the client rect is zoomed, clientWidth is not
    const zoom = rect.width / (this.canvas.clientWidth || rect.width || 1);
    const x = ((event.clientX - rect.left) / zoom - left) / scale;
    const y = ((event.clientY - rect.top) / zoom - top) / scale;
    return [round(Math.min(Math.max(x, 0), width)), round(Math.min(Math.max(y, 0), height))];
  }

  brushRadius() {
    const { width, height } = this.drawing;
    return round(Math.min(width, height) * 0.04);
  }

  down(event) {
    event.preventDefault();
    event.stopPropagation();
    const [x, y] = this.point(event);
    if (event.shiftKey || this.mode === "anchor") {
      this.change((d) => d.anchors.push({ x, y, radius: this.brushRadius() }));
      return;
    }
    this.canvas.setPointerCapture?.(event.pointerId);
    if (this.mode === "arrow") this.pending = { kind: "arrow", x0: x, y0: y, x1: x, y1: y };
    else this.pending = { kind: "stroke", points: [[x, y]], radius: this.brushRadius(), erase: this.mode === "erase" };
    this.redraw();
  }

  move(event) {
    if (!this.pending) return;
    event.preventDefault();
    event.stopPropagation();
    const [x, y] = this.point(event);
    if (this.pending.kind === "arrow") Object.assign(this.pending, { x1: x, y1: y });
    else this.pending.points.push([x, y]);
    this.redraw();
  }

  up(event) {
    if (!this.pending) return;
    event.preventDefault();
    event.stopPropagation();
    this.move(event);
    const done = this.pending;
    this.pending = null;
    if (done.kind === "arrow") {
      const { x0, y0, x1, y1 } = done;
      if (Math.hypot(x1 - x0, y1 - y0) >= 2) this.change((d) => d.arrows.push({ x0, y0, x1, y1 }));
      else this.redraw();
    } else {
      const { points, radius, erase } = done;
      this.change((d) => d.regions.push(erase ? { points, radius, erase } : { points, radius }));
    }
  }

  // --- drawing -------------------------------------------------------------------------------------

  redraw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round((canvas.clientWidth || 300) * ratio));
    canvas.height = Math.max(1, Math.round((canvas.clientHeight || CANVAS_HEIGHT) * ratio));
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const drawing = this.drawing;
    const { scale, left, top } = this.frame();
    ctx.translate(left, top);
    ctx.scale(scale, scale);
    ctx.fillStyle = "#1b1b1b";
    ctx.fillRect(0, 0, drawing.width, drawing.height);
    if (this.picture) ctx.drawImage(this.picture, 0, 0, drawing.width, drawing.height);
    else {
      ctx.fillStyle = "#aaa";
      ctx.font = `${Math.round(14 / scale)}px sans-serif`;
      ctx.fillText("Connect a picture (Load Image) or run once to draw on it", 10 / scale, 24 / scale);
    }
    const strokes = [...drawing.regions, ...(this.pending?.kind === "stroke" ? [this.pending] : [])];
    strokes.forEach((s) => drawStroke(ctx, s));
    const arrows = [...drawing.arrows, ...(this.pending?.kind === "arrow" ? [this.pending] : [])];
    arrows.forEach((a) => drawArrow(ctx, a, 1.5 / scale));
    drawing.anchors.forEach((a) => drawAnchor(ctx, a, 1.5 / scale));
    this.modeButtons?.forEach((b, i) => (b.style.fontWeight = MODES[i] === this.mode ? "bold" : "normal"));
  }
}

function rescale(drawing, sx, sy, image) {
  const sr = (sx + sy) / 2;
  return {
    ...drawing,
    width: image.naturalWidth,
    height: image.naturalHeight,
    arrows: drawing.arrows.map((a) => ({ x0: round(a.x0 * sx), y0: round(a.y0 * sy), x1: round(a.x1 * sx), y1: round(a.y1 * sy) })),
    anchors: drawing.anchors.map((a) => ({ x: round(a.x * sx), y: round(a.y * sy), radius: round(a.radius * sr) })),
    regions: drawing.regions.map((s) => ({ ...s, points: s.points.map(([x, y]) => [round(x * sx), round(y * sy)]), radius: round(s.radius * sr) })),
  };
}

function drawStroke(ctx, stroke) {
  ctx.save();
  ctx.strokeStyle = stroke.erase ? "rgba(0, 0, 0, 0.5)" : "rgba(80, 160, 255, 0.45)";
  ctx.lineWidth = 2 * stroke.radius;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (stroke.points.length === 1) ctx.lineTo(stroke.points[0][0] + 0.01, stroke.points[0][1]);
  ctx.stroke();
  ctx.restore();
}

function drawArrow(ctx, arrow, width) {
  const { x0, y0, x1, y1 } = arrow;
  const length = Math.hypot(x1 - x0, y1 - y0);
  if (length < 1e-6) return;
  const head = Math.min(0.35 * length, 12 * width);
  const back = Math.atan2(y0 - y1, x0 - x1);
  ctx.save();
  ctx.lineCap = "round";
  for (const [color, w] of [["black", 3 * width], ["#ffe14d", width]]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = w;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    for (const turn of [-0.5, 0.5]) {
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 + head * Math.cos(back + turn), y1 + head * Math.sin(back + turn));
    }
    ctx.stroke();
  }
  ctx.restore();
}

function drawAnchor(ctx, anchor, width) {
  ctx.save();
  ctx.lineWidth = 2 * width;
  ctx.strokeStyle = "#ff4d4d";
  ctx.fillStyle = "rgba(255, 77, 77, 0.25)";
  ctx.beginPath();
  ctx.arc(anchor.x, anchor.y, anchor.radius, 0, 2 * Math.PI);
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}

app.registerExtension({
  name: "text2cinemagraph.MotionBrush",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      const widget = this.widgets?.find((w) => w.name === "drawing");
      if (widget) {
        this.t2cDrawing = new DrawingCanvas(this, widget);
        this.addDOMWidget("drawing_canvas", "t2c_drawing_canvas", this.t2cDrawing.element, {
          serialize: false,
          getValue: () => undefined,
          setValue: () => {},
          getMinHeight: () => CANVAS_HEIGHT + 72, // the toolbar wraps to two rows on a narrow node
        });
        const original = widget.callback;
        widget.callback = (...args) => {
          original?.apply(widget, args);
          this.t2cDrawing?.redraw();
        };
        this.setSize?.([Math.max(this.size[0], 360), this.computeSize()[1]]);
        // No editor (1.32, 1.58, Nodes 2.0) has one event for "an upstream widget changed": comparing
        // one address twice a second covers connecting, choosing another file and loading a graph.
        this.t2cFollow = setInterval(() => this.t2cDrawing?.follow(upstreamPicture(this)), FOLLOW_MS);
      }
      return result;
    };
    const removed = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      clearInterval(this.t2cFollow);
      return removed?.apply(this, arguments);
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      executed?.apply(this, arguments);
      const entry = output?.[PICTURE_KEY]?.[0];
      if (entry && this.t2cDrawing) {
        const query = new URLSearchParams({ filename: entry.filename, subfolder: entry.subfolder, type: entry.type });
        this.t2cDrawing.showPicture(api.apiURL(`/view?${query}`));
      }
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      if (this.t2cDrawing) {
        // a saved size from before the canvas existed (or from the API converter) must still fit it
        this.setSize?.([Math.max(this.size[0], 360), Math.max(this.size[1], this.computeSize()[1])]);
        this.t2cDrawing.redraw();
      }
      return result;
    };
  },
});
