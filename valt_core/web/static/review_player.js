// The review player: every track of a recording on one shared clock, streamed segment by segment
// into Media Source Extensions; markers on the timeline; in/out points and clips; the activity log.
// Plain ES module, no build step. `window.valtPlayer` exposes the clock for tests and scripts.
import {api} from "./api.js";
import {el, showMessage} from "./dom.js";

const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];  // Chromium plays up to 16x
const MUTE_ABOVE = 4;          // audio above this speed is noise
const TICK_MS = 50;            // how often the videos are checked against the clock
const DRIFT_START_S = 0.03;    // further off than this: start correcting with the video's speed
const DRIFT_OK_S = 0.008;      // ... until it is this close (few speed changes: each one disturbs the audio)
const NUDGE_S = 0.15;          // a drift is corrected by a rate change over about this long
const START_MAX_MS = 1000;     // time starts once every video runs, or after this long
const WARM_MS = 500;           // after a start or a speed change, time waits for the slowest video
const JUMP_S = 0.5;            // further off than this (in seconds of wall time): seek the video
const BEHIND_KEEP_S = 20;      // buffer kept behind the playhead (a quick step back needs no fetch)
const AHEAD_S = 20;            // buffer wanted ahead, times the speed above 1x
const AHEAD_SEGMENTS = 3;      // at least the current segment and the next two
const BUDGET_BYTES = 80e6;     // most media fetched ahead per track (a 4K camera's minute is more)
const WAIT_MAX_MS = 4000;      // the clock waits this long for a track that buffers, then goes on
const FRAME_S = 1 / 25;        // one frame (the sim and most cameras run 25 fps)
const MARKER_SHOWN_S = 3;      // a marker's text stays over the video this long (or its duration)
const REFRESH_MS = 5000;       // a running recording's segment list is read again this often
const COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "gray"];

const root = document.getElementById("player");
const recordingId = Number(root.dataset.recordingId);
const rights = JSON.parse(root.dataset.rights || "{}");

// ---- time formatting ---------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Recording seconds as H:MM:SS (with tenths when `tenths`). */
function fmt(seconds, tenths = false) {
  const s = Math.max(0, seconds);
  const whole = Math.floor(s);
  const text = `${Math.floor(whole / 3600)}:${pad(Math.floor(whole / 60) % 60)}:${pad(whole % 60)}`;
  return tenths ? `${text}.${Math.floor((s - whole) * 10)}` : text;
}

const wallFormat = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit",
                                                        hour12: false});
const dateFormat = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});

function parseUtc(iso) {
  // The API's times are UTC; one without a zone is UTC too, not the browser's local time.
  return iso ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`) : NaN;
}

function fmtBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The buffered range that holds `t`, or starts at most `slack` s after it; null if none. */
function rangeAt(ranges, t, slack = 0) {
  for (let i = 0; i < ranges.length; i += 1) {
    if (ranges.start(i) - slack <= t && t < ranges.end(i)) return {start: ranges.start(i), end: ranges.end(i)};
  }
  return null;
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

// ---- the shared clock --------------------------------------------------------------------------

/** The master clock: recording seconds, from performance.now() and the speed. Videos follow it. */
class Clock {
  constructor() {
    this.pos = 0;
    this.at = performance.now();
    this.rate = 1;
    this.playing = false;  // the person pressed play
    this.held = false;     // ... but a track is still buffering, so time stands still
    this.end = 0;
  }

  get running() { return this.playing && !this.held; }

  now() {
    if (!this.running) return this.pos;
    return Math.min(this.end, this.pos + (performance.now() - this.at) / 1000 * this.rate);
  }

  _anchor() { this.pos = this.now(); this.at = performance.now(); }
  play() { this._anchor(); this.playing = true; }
  pause() { this._anchor(); this.playing = false; }
  seek(t) { this.pos = clamp(t, 0, this.end); this.at = performance.now(); }
  setRate(rate) { this._anchor(); this.rate = rate; }
  hold(on) { if (on !== this.held) { this._anchor(); this.held = on; } }
}

// ---- one track: a <video>, its MediaSource and the segments around the playhead ----------------

class TrackView {
  constructor(player, track, info) {
    this.player = player;
    this.track = track;
    this.setInfo(info);
    this.loaded = new Set();   // seqs appended and not evicted since
    this.loading = null;       // the segment being fetched {seq, abort}
    this.ready = false;
    this.failures = 0;
    this.video = el("video", {muted: true, playsInline: true, preload: "auto"});
    this.video.muted = true;
    this.noVideo = el("div", {className: "no-video", hidden: true});
    this.spinner = el("div", {className: "buffering", hidden: true}, el("span", {className: "spinner"}));
    this.caption = el("figcaption", {}, el("span", {className: "name"}, track.camera_name));
    this.view = el("figure", {className: "view"}, this.video, this.noVideo, this.spinner, this.caption);
    this.view.dataset.trackId = track.id;
    this.unplayable = !info.mime_type || !window.MediaSource || !MediaSource.isTypeSupported(info.mime_type);
    if (this.unplayable) this._sayUnplayable();
    else this._openSource();
  }

  setInfo(info) {
    this.info = info;
    this.segments = info.segments.slice().sort((a, b) => a.start_s - b.start_s);
    this.gaps = info.gaps || [];
  }

  get hasAudio() { return Boolean(this.info.has_audio); }

  _sayUnplayable() {
    const href = `/api/v1/recordings/${recordingId}/tracks/${this.track.id}/media`;
    const why = this.segments.length ? "This track cannot play in the browser; " : "This track has no video yet; ";
    this.noVideo.replaceChildren(el("strong", {}, why),
                                 this.segments.length && rights.download !== false
                                   ? el("a", {href, download: ""}, "download it") : null);
    this.noVideo.hidden = false;
    this.view.classList.add("unplayable");
  }

  _openSource() {
    this.source = new MediaSource();
    this.video.src = URL.createObjectURL(this.source);
    this.source.addEventListener("sourceopen", () => {
      this.buffer = this.source.addSourceBuffer(this.info.mime_type);
      // Each segment is a whole fMP4 whose times start at 0: it is placed by timestampOffset.
      this.buffer.mode = "segments";
      this.pump();
    }, {once: true});
    this.video.addEventListener("error", () => {
      const e = this.video.error;
      const why = e ? e.message || e.code : "error";
      this.player.error(`${this.track.camera_name}: the browser could not play the video (${why})`);
    });
  }

  /** What is at recording time `t`: {media: true} or {media: false, what, reason, from, to}. */
  stateAt(t) {
    for (const g of this.gaps) {
      const end = g.end_s == null ? Infinity : g.end_s;
      if (g.start_s <= t && t < end) {
        return {media: false, what: "camera offline", reason: g.reason || "", from: g.start_s, to: g.end_s};
      }
    }
    const segs = this.segments;
    if (!segs.length) return {media: false, what: "nothing recorded yet", reason: "", from: 0, to: null};
    const first = segs[0].start_s, last = segs[segs.length - 1];
    const end = last.start_s + last.duration_s;
    if (t < first - 0.05) return {media: false, what: "camera not recorded yet", reason: "", from: 0, to: first};
    if (t >= end) {
      // While it records, the segment being written is not listed yet.
      const what = this.player.isRunning() ? "still being recorded" : "camera's recording ended";
      return {media: false, what, reason: "", from: end, to: null};
    }
    for (let i = 0; i < segs.length; i += 1) {
      const s = segs[i];
      if (t < s.start_s - 0.3) {
        const prev = segs[i - 1];
        return {media: false, what: "no recording", reason: "", from: prev.start_s + prev.duration_s, to: s.start_s};
      }
      if (t < s.start_s + s.duration_s + 0.3) return {media: true, segment: s};
    }
    return {media: true};
  }

  /** The segments wanted around `t`: the one playing (or next) and enough ahead. */
  wanted(t) {
    const rate = this.player.clock.rate;
    const ahead = AHEAD_S * Math.max(1, rate);
    const out = [];
    let bytes = 0;
    for (const s of this.segments) {
      if (s.start_s + s.duration_s <= t) continue;
      if (out.length >= AHEAD_SEGMENTS && (s.start_s > t + ahead || bytes > BUDGET_BYTES)) break;
      out.push(s);
      bytes += s.bytes;
    }
    return out;
  }

  /** Fetch and append the next wanted segment, or trim what is far from the playhead. */
  async pump() {
    if (this.busy || !this.buffer || this.source.readyState !== "open") return;
    this.busy = true;
    try {
      const t = this.player.clock.now();
      if (await this._evict(t)) return;
      const next = this.wanted(t).find((s) => !this.loaded.has(s.seq));
      if (!next) return;
      const abort = new AbortController();
      this.loading = {seq: next.seq, abort};
      const r = await fetch(next.url, {credentials: "same-origin", signal: abort.signal});
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        throw new Error(body.message || `segment ${next.seq}: ${r.status}`);
      }
      const data = await r.arrayBuffer();
      await this._append(next, data);
      this.loaded.add(next.seq);
      this.failures = 0;
    } catch (err) {
      if (err.name !== "AbortError") {
        this.failures += 1;
        if (this.failures === 3) this.player.error(`${this.track.camera_name}: ${err.message || err}`);
        await new Promise((ok) => setTimeout(ok, Math.min(10000, 500 * 2 ** this.failures)));
      }
    } finally {
      this.loading = null;
      this.busy = false;
    }
    this.pump();
  }

  _whenIdle() {
    const b = this.buffer;
    return b.updating ? new Promise((ok) => b.addEventListener("updateend", ok, {once: true})) : Promise.resolve();
  }

  async _append(seg, data) {
    await this._whenIdle();
    const b = this.buffer;
    b.timestampOffset = seg.start_s;
    try {
      b.appendBuffer(data);
    } catch (err) {
      if (err.name !== "QuotaExceededError") throw err;
      // Full: keep only a few seconds around the playhead and try once more.
      const t = this.player.clock.now();
      await this._remove(0, Math.max(0, t - 2));
      await this._remove(t + 2 * seg.duration_s + 10, Infinity);
      await this._whenIdle();
      b.timestampOffset = seg.start_s;
      b.appendBuffer(data);
    }
    await this._whenIdle();
  }

  async _remove(from, to) {
    const b = this.buffer;
    const end = b.buffered.length ? b.buffered.end(b.buffered.length - 1) : 0;
    to = Math.min(to, end);
    if (to - from < 0.5) return false;
    await this._whenIdle();
    b.remove(from, to);
    await this._whenIdle();
    // A segment that lost any of its media is fetched again when it is wanted.
    for (const s of this.segments) {
      if (s.start_s < to && s.start_s + s.duration_s > from) this.loaded.delete(s.seq);
    }
    return true;
  }

  async _evict(t) {
    const b = this.buffer;
    if (!b.buffered.length) return false;
    const keepTo = t + AHEAD_S * Math.max(1, this.player.clock.rate) * 2 +
      Math.max(0, ...this.wanted(t).map((s) => s.start_s + s.duration_s - t));
    for (let i = 0; i < b.buffered.length; i += 1) {
      const a = b.buffered.start(i), z = b.buffered.end(i);
      if (a < t - BEHIND_KEEP_S - 1) return this._remove(a, Math.min(z, t - BEHIND_KEEP_S));
      if (z > keepTo + 1) return this._remove(Math.max(a, keepTo), z);
    }
    return false;
  }

  /** After a seek: drop a fetch that is no longer wanted so the one at the playhead comes first. */
  seeked(t) {
    if (this.loading && !this.wanted(t).some((s) => s.seq === this.loading.seq)) this.loading.abort.abort();
    this.pump();
  }

  /** Keep the video on the clock; say "No video" where the track has none. */
  sync(t) {
    const clock = this.player.clock;
    const v = this.video;
    const here = this.stateAt(t);
    this.here = here;
    if (this.unplayable) { this.ready = true; return; }
    if (!here.media) {
      this.ready = true;
      if (!v.paused) v.pause();
      // Wait at the first frame after the gap, so the video picks up there at once.
      if (here.to != null && this.buffer && !v.seeking && Math.abs(v.currentTime - here.to) > 0.05 &&
          rangeAt(this.buffer.buffered, here.to + 0.01, 0.3)) v.currentTime = here.to + 0.001;
      const span = here.to == null ? `from ${this.player.wall(here.from)}`
        : `${this.player.wall(here.from)}–${this.player.wall(here.to)}`;
      const key = `${here.what} ${span} ${here.reason}`;
      if (this.noVideoKey !== key) {
        this.noVideoKey = key;
        const reason = here.reason ? el("small", {className: "reason", textContent: here.reason}) : null;
        this.noVideo.replaceChildren(el("div", {}, el("strong", {}, "No video"), el("br"),
                                        `${here.what} ${span}`, reason));
        this.noVideo.title = here.reason;
      }
      this.noVideo.hidden = false;
      this.spinner.hidden = true;
      this.view.dataset.media = "none";
      return;
    }
    this.noVideo.hidden = true;
    this.view.dataset.media = "yes";
    // A segment's first frame may come a little after its start_s: there the video waits on it.
    const range = this.buffer ? rangeAt(this.buffer.buffered, t + 0.01, 0.3) : null;
    if (range) t = Math.max(t, range.start + 0.001);
    const drift = v.currentTime - t;
    if (range == null) {
      this.ready = false;
      this.spinner.hidden = false;
      if (!v.paused) v.pause();
      if (Math.abs(drift) > 0.1 && !v.seeking) v.currentTime = t;
      if (!this.busy) this.pump();
      return;
    }
    // Near the end of what was recorded before a gap there is no "future data": nothing to wait for.
    this.ready = !v.seeking && (v.readyState >= 3 || (range.end - t < 0.3 && !this.loading));
    this.spinner.hidden = this.ready || !clock.playing;
    const rate = clock.rate;
    v.muted = !(this.player.audible === this && rate <= MUTE_ABOVE);
    if (clock.playing && this.player.starting) {
      // Every track has data: the videos start first, and time starts where they are.
      if (v.playbackRate !== rate) v.playbackRate = rate;
      if (v.paused) v.play().catch((err) => this._playRefused(err));
      return;
    }
    if (!clock.running) {
      if (!v.paused) v.pause();
      // Paused: show exactly the clock's frame.
      if (Math.abs(drift) > 0.02 && !v.seeking) v.currentTime = t;
      if (v.playbackRate !== rate) v.playbackRate = rate;
      return;
    }
    if (v.seeking) return;
    if (Math.abs(drift) > Math.max(JUMP_S, JUMP_S * rate / 4)) {
      // Far off: seek, a little ahead by what a seek took last time at this speed.
      this.seekStarted = performance.now();
      v.currentTime = Math.min(clock.end, t + (this.seekLag || 0.1) * rate);
      v.addEventListener("seeked", () => {
        this.seekLag = clamp((performance.now() - this.seekStarted) / 1000, 0.02, 0.5);
      }, {once: true});
      return;
    }
    if (Math.abs(drift) > DRIFT_START_S) this.nudging = true;
    else if (Math.abs(drift) < DRIFT_OK_S || Math.sign(drift) !== this.nudgeSign) this.nudging = false;
    this.nudgeSign = Math.sign(drift);
    let target = rate;
    if (this.nudging) target = rate - clamp(drift / NUDGE_S, -0.6 * rate - 0.1, 0.6 * rate + 0.1);
    target = clamp(target, 0.0625, 16);
    if (Math.abs(v.playbackRate - target) > 0.02 * rate || (target === rate && v.playbackRate !== rate)) {
      v.playbackRate = target;
    }
    if (v.paused) v.play().catch((err) => this._playRefused(err));
  }

  _playRefused(err) {
    if (err.name === "NotAllowedError" && !this.video.muted) {
      // The browser wants a click before sound: play muted and say how to get the sound.
      this.player.audible = null;
      this.player.say("Sound is off until you click in the page; choose the audio track again.");
    }
  }

  // The position of the view: in the focus layout, the large one or a small one.
  setRole(role) { this.view.dataset.role = role; }
}

// ---- the page ---------------------------------------------------------------------------------

class ReviewPlayer {
  constructor() {
    this.clock = new Clock();
    this.views = [];
    this.markers = [];
    this.clips = new Map();   // id -> clip (made here, or listed by the API)
    this.inPoint = null;
    this.outPoint = null;
    this.audible = null;
    this.main = null;
    this.layout = "focus";
    this.showMarkerText = true;
    this.waitSince = null;
    this.waitGaveUp = false;
    this.build();
  }

  // ---- layout ----

  build() {
    this.title = el("h1", {}, "Recording");
    this.meta = el("p", {className: "rec-meta"});
    this.msg = el("p", {className: "error", role: "alert", hidden: true});
    this.note = el("p", {className: "note", role: "status", hidden: true});
    this.stage = el("div", {className: "stage"});
    this.stage.dataset.layout = "focus";
    this.markerText = el("div", {className: "marker-text", hidden: true});
    this.stageBox = el("div", {className: "stage-box"}, this.stage, this.markerText);

    // Controls
    const button = (text, title, onClick, cls = "") => {
      const b = el("button", {type: "button", textContent: text, title, className: cls});
      b.addEventListener("click", () => { onClick(); b.blur(); });
      return b;
    };
    this.playButton = button("▶ Play", "Play / pause (Space, K)", () => this.toggle(), "play");
    this.speed = el("select", {className: "speed", title: "Speed (J slower / back, L faster)"},
                    ...SPEEDS.map((s) => el("option", {value: String(s), textContent: `${s}x`})));
    this.speed.value = "1";
    // A choice made, the keys go back to the player (Space must not reopen the list).
    this.speed.addEventListener("change", () => { this.setRate(Number(this.speed.value)); this.speed.blur(); });
    this.posText = el("span", {className: "pos"});
    this.wallText = el("span", {className: "wall",
      title: "Wall-clock time of this moment: the start time plus the position. If the recording was " +
             "paused, paused time is not recorded and later wall-clock times are approximate."});
    this.audio = el("select", {className: "audio", title: "The one track you hear"});
    this.audio.addEventListener("change", () => {
      this.audible = this.views.find((v) => String(v.track.id) === this.audio.value) || null;
      this.audio.blur();
    });
    this.layoutButton = button("Grid", "Switch between one large view and a grid", () => this.toggleLayout());
    this.textToggle = el("input", {type: "checkbox", checked: true});
    this.textToggle.addEventListener("change", () => { this.showMarkerText = this.textToggle.checked; });
    const controls = el("div", {className: "controls"},
      button("−1 s", "Back 1 s (←, Shift+← 10 s)", () => this.step(-1)),
      button("◀|", "One frame back (paused; ,)", () => this.frame(-1), "frame"),
      this.playButton,
      button("|▶", "One frame forward (paused; .)", () => this.frame(1), "frame"),
      button("+1 s", "Forward 1 s (→, Shift+→ 10 s)", () => this.step(1)),
      this.speed, this.posText, this.wallText,
      el("span", {className: "spacer"}),
      el("label", {title: "The track you hear"}, "Audio ", this.audio),
      el("label", {className: "check", title: "Show a marker's text over the video near its time"},
         this.textToggle, " Marker text"),
      this.layoutButton,
      button("?", "Keyboard shortcuts (?)", () => this.toggleHelp()));

    // Timeline
    this.lanes = el("div", {className: "lanes"});
    this.range = el("div", {className: "inout", hidden: true});
    this.inHandle = el("div", {className: "handle in", hidden: true, title: "In point: drag to move ([)"});
    this.outHandle = el("div", {className: "handle out", hidden: true, title: "Out point: drag to move (])"});
    this.playhead = el("div", {className: "playhead"});
    this.ticks = el("div", {className: "ticks"});
    this.hover = el("div", {className: "hover", hidden: true});
    this.timeline = el("div", {className: "timeline", tabIndex: -1},
                       this.lanes, this.range, this.playhead, this.ticks, this.inHandle, this.outHandle, this.hover);
    this.startText = el("span");
    this.endText = el("span");
    const timeBox = el("div", {className: "timeline-box"}, this.timeline,
                       el("div", {className: "timeline-ends"}, this.startText, this.endText));
    this._timelineEvents();

    // Side panel: markers and activity
    this.markerList = el("ol", {className: "marker-list"});
    this.markerForm = this._markerForm();
    const addMarker = rights.mark
      ? button("+ Marker", "Add a marker here (M)", () => this.openMarkerForm(), "add-marker") : null;
    this.markersPane = el("div", {className: "pane markers-pane"}, el("div", {className: "pane-bar"}, addMarker),
                          this.markerForm, this.markerList);
    this.activityList = el("ol", {className: "activity-list"});
    this.activityPane = el("div", {className: "pane activity-pane", hidden: true},
                           el("div", {className: "pane-bar"},
                              button("Refresh", "Read the audit log again", () => this.loadActivity())),
                           el("p", {className: "help"}, "Who opened, watched, marked and cut this recording."),
                           this.activityList);
    this.markersTab = el("button", {type: "button", className: "tab", textContent: "Markers",
                                    ariaSelected: "true"});
    this.markersTab.addEventListener("click", () => this.showPane("markers"));
    const tabs = [this.markersTab];
    if (rights.audit) {
      this.activityTab = el("button", {type: "button", className: "tab", textContent: "Activity",
                                       ariaSelected: "false"});
      this.activityTab.addEventListener("click", () => this.showPane("activity"));
      tabs.push(this.activityTab);
    }
    const side = el("aside", {className: "side"}, el("div", {className: "tabs", role: "tablist"}, ...tabs),
                    this.markersPane, rights.audit ? this.activityPane : null);

    // Clips
    this.clipPanel = this._clipPanel();

    this.help = this._help();
    const playerBox = el("div", {className: "player-box"}, this.stageBox, controls, timeBox);
    root.replaceChildren(el("header", {className: "page-bar"}, this.title, this.meta), this.msg, this.note,
                         el("div", {className: "player-layout"}, playerBox, side), this.clipPanel, this.help);
  }

  _timelineEvents() {
    const at = (ev) => {
      const r = this.timeline.getBoundingClientRect();
      return clamp((ev.clientX - r.left) / r.width, 0, 1) * this.clock.end;
    };
    let dragging = null;  // "seek" | "in" | "out"
    const down = (what) => (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      ev.stopPropagation();
      dragging = what;
      this.timeline.setPointerCapture(ev.pointerId);
      move(ev);
    };
    const move = (ev) => {
      const t = at(ev);
      this.hover.hidden = false;
      this.hover.style.left = `${(t / (this.clock.end || 1)) * 100}%`;
      this.hover.textContent = `${fmt(t, true)} · ${this.wall(t)}`;
      if (dragging === "seek") this.seek(t);
      else if (dragging === "in") this.setIn(Math.min(t, this.outPoint ?? Infinity));
      else if (dragging === "out") this.setOut(Math.max(t, this.inPoint ?? 0));
    };
    this.timeline.addEventListener("pointerdown", down("seek"));
    this.inHandle.addEventListener("pointerdown", down("in"));
    this.outHandle.addEventListener("pointerdown", down("out"));
    this.timeline.addEventListener("pointermove", move);
    this.timeline.addEventListener("pointerup", () => { dragging = null; });
    this.timeline.addEventListener("pointercancel", () => { dragging = null; });
    this.timeline.addEventListener("pointerleave", () => { if (!dragging) this.hover.hidden = true; });
  }

  _help() {
    const keys = [["Space or K", "play / pause"], ["← / →", "back / forward 1 s"],
                  ["Shift + ← / →", "back / forward 10 s"], [", / .", "one frame back / forward (paused)"],
                  ["J", "slower; at 1x or slower, back 5 s"], ["L", "play; when playing, faster (up to 16x)"],
                  ["[ / ]", "set the clip's in / out point here"], ["M", "add a marker here"],
                  ["G", "one large view / grid"], ["?", "this help"], ["Esc", "close"]];
    const close = el("button", {type: "button", textContent: "Close"});
    close.addEventListener("click", () => this.toggleHelp(false));
    return el("div", {className: "help-overlay", hidden: true, role: "dialog", ariaLabel: "Keyboard shortcuts"},
              el("div", {className: "card"}, el("h2", {}, "Keyboard shortcuts"),
                 el("dl", {}, ...keys.flatMap(([k, what]) => [el("dt", {}, k), el("dd", {}, what)])), close));
  }

  toggleHelp(on = this.help.hidden) { this.help.hidden = !on; }

  toggleLayout() {
    this.layout = this.layout === "focus" ? "grid" : "focus";
    this.stage.dataset.layout = this.layout;
    this.layoutButton.textContent = this.layout === "focus" ? "Grid" : "One large";
  }

  setMain(view) {
    this.main = view;
    for (const v of this.views) v.setRole(v === view ? "main" : "small");
    // The large view first, the others in recording order after it.
    view.view.style.order = "0";
    this.views.filter((v) => v !== view).forEach((v, i) => { v.view.style.order = String(i + 1); });
  }

  showPane(which) {
    this.markersPane.hidden = which !== "markers";
    this.markersTab.ariaSelected = String(which === "markers");
    if (this.activityTab) {
      this.activityPane.hidden = which !== "activity";
      this.activityTab.ariaSelected = String(which === "activity");
      if (which === "activity") this.loadActivity();
    }
  }

  error(message) { showMessage(this.msg, message); }

  say(message) {
    showMessage(this.note, message);
    clearTimeout(this.sayTimer);
    this.sayTimer = setTimeout(() => showMessage(this.note, ""), 6000);
  }

  /** Wall-clock time at recording second `t` (approximate after a pause). */
  wall(t) {
    if (!Number.isFinite(this.startedAt) || t == null) return "";
    return wallFormat.format(new Date(this.startedAt + t * 1000));
  }

  // ---- loading ----

  async load() {
    try {
      const [rec, me] = await Promise.all([api("GET", `/api/v1/recordings/${recordingId}`),
                                           api("GET", "/api/v1/auth/me").catch(() => null)]);
      this.me = me;
      this.rec = rec;
      this.startedAt = parseUtc(rec.started_at);
      const infos = await Promise.all(rec.tracks.map((t) =>
        api("GET", `/api/v1/recordings/${recordingId}/tracks/${t.id}/segments`)));
      this._describe(rec);
      this._setEnd(rec, infos);
      rec.tracks.forEach((t, i) => {
        const view = new TrackView(this, t, infos[i]);
        view.view.addEventListener("click", (ev) => {
          if (this.layout === "focus" && this.main !== view && !ev.target.closest("a")) this.setMain(view);
        });
        this.views.push(view);
        this.stage.append(view.view);
      });
      if (!this.views.length) this.error("This recording has no tracks.");
      else this.setMain(this.views[0]);
      this._audioChoices();
      this._clipCameras();
      this._lanes();
    } catch (err) {
      this.error(err.message);
      return;
    }
    this.loadMarkers();
    this.loadClips();
    setInterval(() => this._tick(), TICK_MS);
    requestAnimationFrame(() => this._frame());
    document.addEventListener("keydown", (ev) => this._key(ev));
    document.addEventListener("keyup", (ev) => {
      if (ev.key === " " && !this._typing(ev)) ev.preventDefault();  // no button click from Space
    });
    if (this.isRunning()) setTimeout(() => this.refresh(), REFRESH_MS);
  }

  isRunning() { return Boolean(this.rec) && (this.rec.state === "recording" || this.rec.state === "paused"); }

  _describe(rec) {
    this.title.textContent = rec.name || `Recording ${rec.id}`;
    const started = Number.isFinite(this.startedAt) ? dateFormat.format(new Date(this.startedAt)) : "";
    this.meta.textContent = [started, rec.state, `${rec.tracks.length} camera${rec.tracks.length === 1 ? "" : "s"}`]
      .filter(Boolean).join(" · ");
    document.title = `${rec.name || `Recording ${rec.id}`} · Valt`;
  }

  _setEnd(rec, infos) {
    let end = rec.elapsed_s || 0;
    for (const info of infos) {
      for (const s of info.segments) end = Math.max(end, s.start_s + s.duration_s);
    }
    this.clock.end = end;
    this.startText.textContent = `0:00:00 · ${this.wall(0)}`;
    this.endText.textContent = `${fmt(end)} · ${this.wall(end)}`;
  }

  /** A running recording grows: read its tracks again and let the views stream the new segments. */
  async refresh() {
    try {
      const rec = await api("GET", `/api/v1/recordings/${recordingId}`);
      const infos = await Promise.all(this.views.map((v) =>
        api("GET", `/api/v1/recordings/${recordingId}/tracks/${v.track.id}/segments`)));
      this.rec = rec;
      this.views.forEach((v, i) => { v.setInfo(infos[i]); v.pump(); });
      this._describe(rec);
      this._setEnd(rec, infos);
      this._lanes();
    } catch (err) {
      this.error(err.message);
    }
    if (this.isRunning()) setTimeout(() => this.refresh(), REFRESH_MS);
  }

  _audioChoices() {
    const withAudio = this.views.filter((v) => v.hasAudio && !v.unplayable);
    this.audio.replaceChildren(el("option", {value: "", textContent: withAudio.length ? "Muted" : "No audio"}),
                               ...withAudio.map((v) => el("option", {value: String(v.track.id),
                                                                      textContent: v.track.camera_name})));
    this.audible = withAudio[0] || null;
    this.audio.value = this.audible ? String(this.audible.track.id) : "";
    this.audio.disabled = !withAudio.length;
  }

  /** One thin lane per track under the timeline: where it has video, where its gaps are. */
  _lanes() {
    const end = this.clock.end || 1;
    const pct = (t) => `${clamp(t / end, 0, 1) * 100}%`;
    this.lanes.replaceChildren(...this.views.map((v) => {
      const lane = el("div", {className: "lane", title: v.track.camera_name});
      for (const s of v.segments) {
        const part = el("span", {className: "media"});
        part.style.left = pct(s.start_s);
        part.style.width = pct(s.duration_s);
        lane.append(part);
      }
      for (const g of v.gaps) {
        const gap = el("span", {className: "gap",
          title: `${v.track.camera_name}: ${g.reason || "no video"} ` +
                 `${this.wall(g.start_s)}–${this.wall(g.end_s ?? end)}`});
        gap.style.left = pct(g.start_s);
        gap.style.width = pct((g.end_s ?? end) - g.start_s);
        lane.append(gap);
      }
      return lane;
    }));
  }

  // ---- the clock and the videos ----

  _tick() {
    const clock = this.clock;
    let t = clock.now();
    if (clock.playing && t >= clock.end) {
      this.pause();
      t = clock.now();
    }
    this._warm();
    t = clock.now();
    for (const v of this.views) v.sync(t);
    if (clock.playing) {
      // Time waits (a few seconds at most) for a track that has video here but no data yet.
      const waiting = this.views.some((v) => !v.ready);
      if (!waiting) {
        this.waitSince = null;
        this.waitGaveUp = false;
      } else if (this.waitSince == null) {
        this.waitSince = performance.now();
      } else if (performance.now() - this.waitSince > WAIT_MAX_MS) {
        this.waitGaveUp = true;
      }
      if (waiting && !this.waitGaveUp) {
        clock.hold(true);
        this.starting = null;
      } else if (clock.held) {
        this._start();
      }
    } else {
      clock.hold(false);
      this.starting = null;
    }
    for (const v of this.views) if (!v.busy) v.pump();
  }

  /** Time stands still until every video with media here has started to play (play() takes a moment). */
  _start() {
    const clock = this.clock;
    const now = performance.now();
    if (this.starting == null) this.starting = now;
    const media = this.views.filter((v) => !v.unplayable && v.here && v.here.media && v.ready);
    const moving = media.every((v) => !v.video.paused && v.video.currentTime > clock.pos + 0.001);
    if (!moving && now - this.starting < START_MAX_MS) return;
    if (media.length) clock.pos = clamp(Math.min(...media.map((v) => v.video.currentTime)), 0, clock.end);
    clock.at = now;
    clock.hold(false);
    this.starting = null;
    this.warmUntil = now + WARM_MS;
  }

  /** Just after a start or a speed change a video may take a moment to run at speed: time waits for it. */
  _warm() {
    const clock = this.clock;
    const now = performance.now();
    if (!clock.running || !(now < this.warmUntil)) return;
    const times = this.views.filter((v) => !v.unplayable && v.here && v.here.media && v.ready && !v.video.paused)
      .map((v) => v.video.currentTime);
    if (!times.length) return;
    const slowest = Math.min(...times);
    if (clock.now() > slowest + 0.005 && slowest >= clock.pos) {
      clock.pos = slowest;
      clock.at = now;
    }
  }

  _frame() {
    const t = this.clock.now();
    const end = this.clock.end || 1;
    this.posText.textContent = `${fmt(t, true)} / ${fmt(end)}`;
    this.wallText.textContent = this.wall(t);
    this.playhead.style.left = `${clamp(t / end, 0, 1) * 100}%`;
    this.playButton.textContent = this.clock.playing ? "❚❚ Pause" : "▶ Play";
    root.dataset.state = !this.clock.playing ? "paused" : this.clock.held ? "waiting" : "playing";
    this._markerOverlay(t);
    requestAnimationFrame(() => this._frame());
  }

  play() {
    if (this.clock.now() >= this.clock.end - 0.05) this.seek(0);
    this.clock.play();
    this.clock.hold(true);  // until the videos run (see _start)
    this.waitSince = null;
    this.waitGaveUp = false;
    this._tick();
  }

  pause() { this.clock.pause(); this._tick(); }
  toggle() { if (this.clock.playing) this.pause(); else this.play(); }

  seek(t) {
    this.clock.seek(t);
    if (this.clock.playing) this.clock.hold(true);
    this.waitSince = null;
    this.waitGaveUp = false;
    const now = this.clock.now();
    for (const v of this.views) if (!v.unplayable) v.seeked(now);
    this._tick();
  }

  step(seconds) { this.seek(this.clock.now() + seconds); }

  frame(direction) {
    if (this.clock.playing) this.pause();
    this.seek(this.clock.now() + direction * FRAME_S);
  }

  setRate(rate) {
    this.clock.setRate(rate);
    this.speed.value = String(rate);
    for (const v of this.views) { if (!v.unplayable) v.video.playbackRate = rate; }
    this.warmUntil = performance.now() + WARM_MS;
    this._tick();
  }

  // ---- keyboard ----

  _typing(ev) {
    const t = ev.target;
    return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  }

  _key(ev) {
    if (ev.key === "Escape") { this.toggleHelp(false); return; }
    if (this._typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const rateIndex = SPEEDS.indexOf(this.clock.rate);
    const handled = {
      " ": () => this.toggle(),
      k: () => this.pause(),
      K: () => this.pause(),
      ArrowLeft: () => this.step(ev.shiftKey ? -10 : -1),
      ArrowRight: () => this.step(ev.shiftKey ? 10 : 1),
      ",": () => this.frame(-1),
      ".": () => this.frame(1),
      j: () => this._slower(rateIndex),
      J: () => this._slower(rateIndex),
      l: () => this._faster(rateIndex),
      L: () => this._faster(rateIndex),
      "[": () => this.setIn(this.clock.now()),
      "]": () => this.setOut(this.clock.now()),
      m: () => this.openMarkerForm(),
      M: () => this.openMarkerForm(),
      g: () => this.toggleLayout(),
      G: () => this.toggleLayout(),
      "?": () => this.toggleHelp(),
    }[ev.key];
    if (!handled) return;
    ev.preventDefault();
    handled();
  }

  _slower(i) {
    // Browsers do not play backwards: J slows down, and at 1x or slower steps back 5 s.
    if (this.clock.playing && this.clock.rate > 1) this.setRate(SPEEDS[Math.max(0, i - 1)]);
    else this.step(-5);
  }

  _faster(i) {
    if (!this.clock.playing) {
      if (this.clock.rate < 1) this.setRate(1);
      this.play();
    } else {
      this.setRate(SPEEDS[Math.min(SPEEDS.length - 1, i + 1)]);
    }
  }

  // ---- markers ----

  async loadMarkers() {
    try {
      const answer = await api("GET", `/api/v1/recordings/${recordingId}/markers`);
      this.markers = (Array.isArray(answer) ? answer : answer.items || []).sort((a, b) => a.time_s - b.time_s);
      this.renderMarkers();
    } catch (err) {
      this.error(`Markers: ${err.message}`);
    }
  }

  _mayChange(m) {
    return rights.manage_markers || (rights.mark && this.me && m.author_id === this.me.id);
  }

  _colorSelect(value) {
    const select = el("select", {className: "color"}, ...COLORS.map((c) => el("option", {value: c, textContent: c})));
    select.value = value || "blue";
    return select;
  }

  _markerForm() {
    this.markerInput = el("input", {type: "text", maxLength: 500, placeholder: "What happens here?",
                                    ariaLabel: "Marker text"});
    this.markerColor = this._colorSelect("blue");
    this.markerTime = el("span", {className: "time"});
    const save = el("button", {type: "submit", className: "primary", textContent: "Add"});
    const cancel = el("button", {type: "button", textContent: "Cancel"});
    const form = el("form", {className: "marker-form", hidden: true}, this.markerTime, this.markerInput,
                    this.markerColor, save, cancel);
    // Closed, the form gives the keys back to the player.
    const close = () => { form.hidden = true; this.markerInput.blur(); };
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") close(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const event = this.markerInput.value.trim();
      if (!event) { this.markerInput.focus(); return; }
      save.disabled = true;
      try {
        const marker = await api("POST", `/api/v1/recordings/${recordingId}/markers`,
                                 {event, time_s: Math.round(this.markerAt * 1000) / 1000,
                                  color: this.markerColor.value});
        this.markers.push(marker);
        this.markers.sort((a, b) => a.time_s - b.time_s);
        this.renderMarkers();
        close();
        showMessage(this.msg, "");
      } catch (err) {
        this.error(`Marker not saved: ${err.message}`);
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  openMarkerForm() {
    if (!rights.mark) { this.say("You may not add markers."); return; }
    this.showPane("markers");
    this.markerAt = this.clock.now();
    this.markerTime.textContent = fmt(this.markerAt, true);
    this.markerInput.value = "";
    this.markerForm.hidden = false;
    this.markerInput.focus();
  }

  renderMarkers() {
    const end = this.clock.end || 1;
    this.markersTab.textContent = `Markers (${this.markers.length})`;
    this.ticks.replaceChildren(...this.markers.map((m) => {
      const tick = el("button", {type: "button", className: "tick",
                                 title: `${fmt(m.time_s)} · ${m.event}${m.author ? ` — ${m.author}` : ""}`});
      tick.dataset.markerId = m.id;
      tick.style.left = `${clamp(m.time_s / end, 0, 1) * 100}%`;
      tick.style.background = m.hex_color || "#1a73e8";
      if (m.duration_s) {
        tick.classList.add("span");
        tick.style.width = `${clamp(m.duration_s / end, 0, 1) * 100}%`;
      }
      tick.addEventListener("pointerdown", (ev) => ev.stopPropagation());
      tick.addEventListener("click", (ev) => { ev.stopPropagation(); this.seek(m.time_s); tick.blur(); });
      return tick;
    }));
    if (!this.markers.length) {
      this.markerList.replaceChildren(el("li", {className: "empty"},
                                         rights.mark ? "No markers yet. Press M to mark a moment." : "No markers."));
      return;
    }
    this.markerList.replaceChildren(...this.markers.map((m) => this._markerItem(m)));
  }

  _markerItem(m) {
    const jump = el("button", {type: "button", className: "time", textContent: fmt(m.time_s, true),
                               title: `Go to ${this.wall(m.time_s)}`});
    jump.addEventListener("click", () => this.seek(m.time_s));
    const dot = el("span", {className: "dot"});
    dot.style.background = m.hex_color || "#1a73e8";
    const text = el("span", {className: "event", textContent: m.event});
    text.addEventListener("click", () => this.seek(m.time_s));
    const who = el("span", {className: "author", textContent: m.author || ""});
    const item = el("li", {className: "marker"}, jump, dot, text, who);
    item.dataset.markerId = m.id;
    if (this._mayChange(m)) {
      const edit = el("button", {type: "button", className: "link", textContent: "Edit"});
      const del = el("button", {type: "button", className: "link danger", textContent: "Delete"});
      edit.addEventListener("click", () => this._editMarker(item, m));
      del.addEventListener("click", () => this._deleteMarker(m));
      item.append(el("span", {className: "marker-actions"}, edit, del));
    }
    return item;
  }

  _editMarker(item, m) {
    const input = el("input", {type: "text", value: m.event, maxLength: 500, ariaLabel: "Marker text"});
    const color = this._colorSelect(m.color);
    const save = el("button", {type: "submit", className: "primary", textContent: "Save"});
    const cancel = el("button", {type: "button", textContent: "Cancel"});
    const form = el("form", {className: "marker-form"}, input, color, save, cancel);
    cancel.addEventListener("click", () => this.renderMarkers());
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") this.renderMarkers(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const changed = await api("PATCH", `/api/v1/markers/${m.id}`, {event: input.value.trim(), color: color.value});
        Object.assign(m, changed);
        this.renderMarkers();
      } catch (err) {
        this.error(`Marker not changed: ${err.message}`);
      }
    });
    item.replaceChildren(form);
    input.focus();
  }

  async _deleteMarker(m) {
    if (!confirm(`Delete the marker "${m.event}" at ${fmt(m.time_s)}?`)) return;
    try {
      await api("DELETE", `/api/v1/markers/${m.id}`);
      this.markers = this.markers.filter((x) => x !== m);
      this.renderMarkers();
    } catch (err) {
      this.error(`Marker not deleted: ${err.message}`);
    }
  }

  _markerOverlay(t) {
    const near = this.showMarkerText ? this.markers.filter((m) =>
      m.time_s - 0.25 <= t && t <= m.time_s + Math.max(m.duration_s || 0, MARKER_SHOWN_S)) : [];
    const text = near.map((m) => m.event).join(" · ");
    if (this.markerText.textContent !== text) {
      this.markerText.replaceChildren(...near.map((m) => {
        const line = el("div", {className: "line", textContent: m.event});
        line.style.borderColor = m.hex_color || "#1a73e8";
        return line;
      }));
    }
    this.markerText.hidden = !near.length;
  }

  // ---- in/out points and clips ----

  setIn(t) {
    this.inPoint = clamp(t, 0, this.clock.end);
    if (this.outPoint != null && this.outPoint <= this.inPoint) this.outPoint = null;
    this._renderInOut();
  }

  setOut(t) {
    this.outPoint = clamp(t, 0, this.clock.end);
    if (this.inPoint != null && this.inPoint >= this.outPoint) this.inPoint = null;
    if (this.inPoint == null) this.inPoint = 0;
    this._renderInOut();
  }

  _renderInOut() {
    const end = this.clock.end || 1;
    const pct = (x) => `${clamp(x / end, 0, 1) * 100}%`;
    this.inHandle.hidden = this.inPoint == null;
    this.outHandle.hidden = this.outPoint == null;
    if (this.inPoint != null) this.inHandle.style.left = pct(this.inPoint);
    if (this.outPoint != null) this.outHandle.style.left = pct(this.outPoint);
    const both = this.inPoint != null && this.outPoint != null;
    this.range.hidden = !both;
    if (both) {
      this.range.style.left = pct(this.inPoint);
      this.range.style.width = pct(this.outPoint - this.inPoint);
    }
    this.inText.textContent = this.inPoint == null ? "–" : `${fmt(this.inPoint, true)} (${this.wall(this.inPoint)})`;
    this.outText.textContent = this.outPoint == null ? "–"
      : `${fmt(this.outPoint, true)} (${this.wall(this.outPoint)})`;
    this.lengthText.textContent = both ? `${(this.outPoint - this.inPoint).toFixed(1)} s` : "";
    this.createClip.disabled = !both;
  }

  _clipPanel() {
    this.inText = el("span", {className: "in-text", textContent: "–"});
    this.outText = el("span", {className: "out-text", textContent: "–"});
    this.lengthText = el("span", {className: "length"});
    const setIn = el("button", {type: "button", textContent: "Set in [", title: "In point here ([)"});
    const setOut = el("button", {type: "button", textContent: "Set out ]", title: "Out point here (])"});
    const clear = el("button", {type: "button", textContent: "Clear"});
    setIn.addEventListener("click", () => this.setIn(this.clock.now()));
    setOut.addEventListener("click", () => this.setOut(this.clock.now()));
    clear.addEventListener("click", () => { this.inPoint = this.outPoint = null; this._renderInOut(); });
    this.clipCameras = el("span", {className: "cameras"});
    this.exact = el("input", {type: "radio", name: "clip-mode", value: "exact"});
    const aligned = el("input", {type: "radio", name: "clip-mode", value: "keyframe", checked: true});
    this.createClip = el("button", {type: "button", className: "primary create-clip", textContent: "Create clip",
                                    disabled: true});
    this.createClip.addEventListener("click", () => this.makeClip());
    this.clipTable = el("tbody");
    const panel = el("section", {className: "card clip-panel"},
      el("h2", {}, rights.clip ? "Cutting a clip" : "Clips"),
      el("div", {className: "clip-row"}, el("strong", {}, "In "), this.inText, el("strong", {}, " Out "), this.outText,
         this.lengthText, setIn, setOut, clear),
      el("div", {className: "clip-row", hidden: !rights.clip}, el("strong", {}, "Cameras "), this.clipCameras),
      el("div", {className: "clip-row", hidden: !rights.clip},
         el("label", {title: "Starts at the keyframe at or before the in point: fast, exact copy of the recording"},
            aligned, " Keyframe-aligned (may start up to one keyframe interval early)"),
         el("label", {title: "Starts exactly at the in point"}, this.exact, " Exact start")),
      el("div", {className: "clip-row"}, rights.clip ? this.createClip :
         el("span", {className: "help"}, "You may not cut clips of this recording.")),
      el("table", {className: "clip-table"},
         el("thead", {}, el("tr", {}, ...["Clip", "Range", "Cameras", "Made by", "When", "State", "Size", "SHA-256", ""]
           .map((h) => el("th", {}, h)))),
         this.clipTable));
    return panel;
  }

  _clipCameras() {
    this.clipCameras.replaceChildren(...this.views.map((v) => {
      const box = el("input", {type: "checkbox", checked: true, value: String(v.track.id)});
      return el("label", {className: "check"}, box, ` ${v.track.camera_name}`);
    }));
  }

  async makeClip() {
    const ids = [...this.clipCameras.querySelectorAll("input:checked")].map((b) => Number(b.value));
    if (!ids.length) { this.error("Choose at least one camera for the clip."); return; }
    const body = {start_s: Math.round(this.inPoint * 1000) / 1000, end_s: Math.round(this.outPoint * 1000) / 1000,
                  exact: this.exact.checked};
    if (ids.length !== this.views.length) body.track_ids = ids;
    this.createClip.disabled = true;
    try {
      const clip = await api("POST", `/api/v1/recordings/${recordingId}/clips`, body);
      clip.author = clip.author || (this.me && (this.me.display_name || this.me.username));
      clip.created_at = clip.created_at || new Date().toISOString();
      clip.track_ids = clip.track_ids && clip.track_ids.length ? clip.track_ids : ids;
      this.clips.set(clip.id, clip);
      this.renderClips();
      showMessage(this.msg, "");
      this._pollClip(clip.id);
    } catch (err) {
      this.error(`Clip not started: ${err.message}`);
    } finally {
      this.createClip.disabled = false;
    }
  }

  async _pollClip(id) {
    try {
      const fresh = await api("GET", `/api/v1/clips/${id}`);
      const known = this.clips.get(id) || {};
      this.clips.set(id, {...known, ...fresh, author: fresh.author || known.author,
                          created_at: fresh.created_at || known.created_at,
                          track_ids: fresh.track_ids && fresh.track_ids.length ? fresh.track_ids : known.track_ids});
      this.renderClips();
      if (fresh.state === "failed") this.error(`Clip ${id} failed: ${fresh.error || "unknown error"}`);
      if (fresh.state === "queued" || fresh.state === "running") setTimeout(() => this._pollClip(id), 700);
    } catch (err) {
      this.error(`Clip ${id}: ${err.message}`);
      setTimeout(() => this._pollClip(id), 3000);
    }
  }

  async loadClips() {
    // The recording's earlier clips, where the server lists them; clips made here are kept anyway.
    try {
      const answer = await api("GET", `/api/v1/recordings/${recordingId}/clips`);
      for (const clip of Array.isArray(answer) ? answer : answer.items || []) {
        if (!this.clips.has(clip.id)) this.clips.set(clip.id, clip);
        if (clip.state === "queued" || clip.state === "running") this._pollClip(clip.id);
      }
    } catch (err) {
      if (err.status !== 404 && err.status !== 405) this.error(`Clips: ${err.message}`);
    }
    this.renderClips();
  }

  renderClips() {
    const names = new Map(this.views.map((v) => [v.track.id, v.track.camera_name]));
    const clips = [...this.clips.values()].sort((a, b) => b.id - a.id);
    if (!clips.length) {
      this.clipTable.replaceChildren(el("tr", {}, el("td", {colSpan: 9, className: "empty"}, "No clips yet.")));
      return;
    }
    this.clipTable.replaceChildren(...clips.map((c) => {
      let state;
      if (c.state === "done" && rights.download === false) {
        state = el("span", {className: "view-only", textContent: "ready (view only: no download)"});
      } else if (c.state === "done") {
        state = el("a", {className: "download", href: `/api/v1/clips/${c.id}/download`, download: "",
                         textContent: "Download"});
      } else if (c.state === "failed") {
        state = el("span", {className: "bad", textContent: `failed: ${c.error || ""}`});
      } else {
        state = el("span", {},
                   el("progress", {max: 1, value: c.progress || 0}),
                   ` ${c.state}${c.queue_position ? ` (${c.queue_position} ahead)` : ""}`);
      }
      const files = c.files || [];
      const size = files.reduce((n, f) => n + (f.bytes || 0), 0);
      const sums = el("span", {className: "sums"}, ...files.map((f) =>
        el("code", {title: `${f.name}: SHA-256 ${f.sha256}`,
                    textContent: `${names.get(f.track_id) || f.name}: ${f.sha256}`})));
      const row = el("tr", {className: "clip"},
        el("td", {}, String(c.id)),
        el("td", {}, `${fmt(c.start_s, true)}–${fmt(c.end_s, true)}${c.exact ? " exact" : ""}`),
        el("td", {}, (c.track_ids || files.map((f) => f.track_id)).map((id) => names.get(id) || id).join(", ")),
        el("td", {}, c.author || ""),
        el("td", {}, c.created_at ? dateFormat.format(new Date(parseUtc(c.created_at))) : ""),
        el("td", {className: "state"}, state),
        el("td", {}, size ? fmtBytes(size) : ""),
        el("td", {}, sums),
        el("td", {}, (() => {
          const go = el("button", {type: "button", className: "link", textContent: "Go to in"});
          go.addEventListener("click", () => { this.seek(c.start_s); this.setIn(c.start_s); this.setOut(c.end_s); });
          return go;
        })()));
      row.dataset.clipId = c.id;
      row.dataset.state = c.state;
      return row;
    }));
  }

  // ---- activity ----

  async loadActivity() {
    try {
      const page = await api("GET", `/api/v1/audit?target_type=recording&target_id=${recordingId}&limit=200`);
      const events = page.events || [];
      this.activityList.replaceChildren(...(events.length ? events.map((e) => {
        const detail = e.detail && Object.keys(e.detail).length
          ? Object.entries(e.detail).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
            .join(", ")
          : "";
        return el("li", {}, el("span", {className: "when", textContent: dateFormat.format(new Date(parseUtc(e.at)))}),
                  el("span", {className: "who", textContent: e.actor || "system"}),
                  el("span", {className: "what", textContent: e.action}),
                  detail ? el("span", {className: "detail", textContent: detail}) : null);
      }) : [el("li", {className: "empty"}, "No activity recorded.")]));
    } catch (err) {
      this.error(`Activity: ${err.message}`);
    }
  }
}

const player = new ReviewPlayer();

/** For tests and scripts: the shared clock and each track's video time, in recording seconds. */
window.valtPlayer = {
  clock: () => player.clock.now(),
  state: () => (!player.clock.playing ? "paused" : player.clock.held ? "waiting" : "playing"),
  rate: () => player.clock.rate,
  videoTimes: () => player.views.map((v) => ({
    track_id: v.track.id, camera: v.track.camera_name, time: v.video.currentTime,
    media: v.here ? v.here.media : null, paused: v.video.paused, muted: v.video.muted,
    rate: v.video.playbackRate, ready: v.ready})),
  seek: (t) => player.seek(t),
  play: () => player.play(),
  pause: () => player.pause(),
  setRate: (r) => player.setRate(r),
};

player.load();
