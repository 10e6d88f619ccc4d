// Live player: a camera's fMP4 over the `wss` transport into Media Source Extensions.
// Plain ES module, no build step. Keeps close to the live edge and reconnects on its own.

const KEEP_BEHIND_S = 10;   // buffer kept behind the playhead
const CATCH_UP_S = 0.5;     // beyond this lag, play slightly faster
const JUMP_S = 1.5;         // beyond this lag (a new viewer starts a GOP back), jump to the live edge

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {number} cameraId
   * @param {(state: string, detail?: string) => void} onState  "connecting" | "playing" | "offline" | "error"
   */
  constructor(video, cameraId, onState = () => {}) {
    this.video = video;
    this.cameraId = cameraId;
    this.onState = onState;
    this.queue = [];
    this.stopped = false;
    this.retry = 1000;
    this.transcoding = [];
    this._tick = setInterval(() => this._keepLive(), 1000);
  }

  async start() {
    if (this.stopped) return;
    this.onState("connecting");
    let live;
    try {
      const r = await fetch(`/api/v1/cameras/${this.cameraId}/live`, {credentials: "same-origin"});
      if (!r.ok) throw new Error((await r.json()).message || r.statusText);
      live = await r.json();
    } catch (err) {
      this.onState("error", String(err.message || err));
      return this._reconnect();
    }
    this.hls = live.endpoints.hls;
    if (!live.endpoints.wss || !window.MediaSource) {
      // Safari on iOS has no MSE but plays HLS by itself.
      if (this._playHls()) return;
      this.onState("error", "no live transport this browser can play");
      return;
    }
    const url = new URL(live.endpoints.wss, location.href);
    // Relative (this server) or absolute (a media server serving live view directly).
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => this._message(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      this.onState(ev.code >= 4400 ? "error" : "offline", ev.reason || "connection closed");
      this._reconnect();
    };
  }

  _playHls() {
    if (!this.hls || !this.video.canPlayType("application/vnd.apple.mpegurl")) return false;
    this.ws = null;
    this.buffer = null;
    this.video.src = this.hls;
    this.video.play().catch(() => {});
    this.onState("playing", "HLS");
    return true;
  }

  stop() {
    this.stopped = true;
    clearInterval(this._tick);
    if (this.ws) this.ws.close();
  }

  _reconnect() {
    if (this.stopped) return;
    setTimeout(() => this.start(), this.retry);
    this.retry = Math.min(this.retry * 2, 10000);
  }

  _message(data) {
    if (typeof data === "string") {
      const msg = JSON.parse(data);
      if (msg.type === "init") this._init(msg);
      return;
    }
    this.queue.push(data);
    this._pump();
  }

  _init(msg) {
    this.transcoding = msg.transcoding || [];
    // "sub": the camera's main stream is not playable here, so its smaller H.264 stream is shown.
    this.profile = msg.profile || "main";
    this.mime = msg.mime;
    this.queue = [];
    if (!window.MediaSource || !MediaSource.isTypeSupported(msg.mime)) {
      if (this.ws) this.ws.close();
      if (this._playHls()) return;
      this.onState("error", `this browser cannot play ${msg.mime}`);
      return;
    }
    this.source = new MediaSource();
    this.buffer = null;
    this.video.src = URL.createObjectURL(this.source);
    this.source.addEventListener("sourceopen", () => {
      this.buffer = this.source.addSourceBuffer(msg.mime);
      this.buffer.mode = "segments";
      this.buffer.addEventListener("updateend", () => this._pump());
      this._pump();
    }, {once: true});
  }

  _pump() {
    const b = this.buffer;
    if (!b || b.updating || !this.queue.length) return;
    try {
      b.appendBuffer(this.queue.shift());
    } catch (err) {
      if (err.name === "QuotaExceededError") {
        this._trim(1);
      } else {
        this.onState("error", String(err.message || err));
      }
    }
  }

  _trim(keep) {
    const b = this.buffer, v = this.video;
    if (!b || b.updating || !b.buffered.length) return;
    const start = b.buffered.start(0);
    if (v.currentTime - keep > start) b.remove(start, v.currentTime - keep);
  }

  _keepLive() {
    const v = this.video, b = this.buffer;
    if (!b || !b.buffered.length) return;
    const end = b.buffered.end(b.buffered.length - 1);
    const start = b.buffered.start(0);
    if (v.currentTime < start) v.currentTime = start;
    const lag = end - v.currentTime;
    if (lag > JUMP_S) {
      v.currentTime = end - 0.3;
    }
    v.playbackRate = lag > CATCH_UP_S ? 1.1 : 1.0;
    if (v.paused) v.play().catch(() => {});
    if (!v.paused && v.readyState >= 2) {
      this.retry = 1000;
      const notes = this.transcoding.length ? [`converted: ${this.transcoding.join(", ")}`] : [];
      if (this.profile !== "main") notes.push(`${this.profile} stream`);
      this.onState("playing", notes.join("; "));
    }
    this._trim(KEEP_BEHIND_S);
  }
}
