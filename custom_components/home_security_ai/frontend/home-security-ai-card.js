// The Home Security AI incidents card: the incidents of the last days, newest first, each with
// its annotated snapshots, level, summary, cameras, people and plates, and buttons to answer it
// (false alarm, "it was ...", snooze the camera). Plain JavaScript, no build step: Home
// Assistant loads this file as a module on every page.

const DOMAIN = "home_security_ai";
const CARD_TYPE = "home-security-ai-card";
const LEVELS = ["low", "medium", "high", "critical"];
const DEFAULT_DAYS = 3;
const DEFAULT_MAX_INCIDENTS = 10;
// The most events asked for: get_events keeps 5000 at most.
const EVENT_LIMIT = 1000;
// Snapshots shown per incident: the first full width, the others as thumbnails.
const MAX_SNAPSHOTS = 5;
// Feedback is sent for each event of an incident, up to this many.
const MAX_FEEDBACK_EVENTS = 20;
const SNOOZE = { hours: 1 };
// Events that no longer change the list do not reload it more often than this.
const RELOAD_EVERY_MS = 60_000;

const escapeHtml = (value) =>
  String(value ?? "").replace(
    /[&<>"']/g,
    (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char],
  );

const levelRank = (level) => Math.max(0, LEVELS.indexOf(level));

const eventTime = (event) =>
  new Date(event.started_at || event.created_at || event.ended_at || 0);

const unique = (values) => [...new Set(values.filter((value) => value))];

// An error of a service call as a sentence (Home Assistant's errors carry a message).
const errorText = (err) => (err && (err.message || err.error || err.code)) || String(err);

/** Group events (newest first) into incidents, newest first. */
export function groupIncidents(events) {
  const byKey = new Map();
  for (const event of events) {
    const key = event.incident_id || `event-${event.event_id}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(event);
  }
  const incidents = [];
  for (const [key, members] of byKey) {
    members.sort((a, b) => eventTime(b) - eventTime(a));
    const top = members.reduce((best, event) =>
      levelRank(event.risk_level) > levelRank(best.risk_level) ||
      (levelRank(event.risk_level) === levelRank(best.risk_level) &&
        (event.risk_score || 0) > (best.risk_score || 0))
        ? event
        : best,
    );
    const times = members.map(eventTime);
    incidents.push({
      key,
      events: members,
      top,
      level: LEVELS.includes(top.risk_level) ? top.risk_level : "low",
      score: top.risk_score || 0,
      summary: top.summary || "",
      start: new Date(Math.min(...times)),
      end: new Date(Math.max(...times)),
      cameras: unique(members.map((event) => event.camera_id)).map((id) => ({
        id,
        name: members.find((event) => event.camera_id === id).camera_name || id,
      })),
      people: unique(members.flatMap((event) => event.people || [])),
      plates: unique(members.flatMap((event) => event.plates || [])),
      // The highest-level event's snapshot first, then the others, newest first.
      snapshots: unique(
        [top, ...members].map((event) => event.media_content_id),
      ).slice(0, MAX_SNAPSHOTS),
    });
  }
  return incidents.sort((a, b) => b.end - a.end);
}

const STYLE = `
  ha-card { overflow: hidden; }
  .header { padding: 16px 16px 0; font-size: var(--ha-card-header-font-size, 24px);
    color: var(--ha-card-header-color, var(--primary-text-color)); }
  .content { padding: 8px 16px 16px; display: flex; flex-direction: column; gap: 16px; }
  .empty, .error { color: var(--secondary-text-color); padding: 8px 0; }
  .error { color: var(--error-color, #db4437); }
  .incident { border: 1px solid var(--divider-color, #e0e0e0);
    border-radius: var(--ha-card-border-radius, 12px); overflow: hidden; }
  /* The whole picture in its own shape (what was drawn at its edges matters), not taller
     than a phone's screen allows; a camera's usual 16:9 while it loads. */
  .snapshot { display: block; width: 100%; height: auto; max-height: min(60vh, 420px);
    object-fit: contain; background: #000; }
  .snapshot:not([src]) { aspect-ratio: 16 / 9; }
  .thumbs { display: flex; gap: 4px; padding: 4px; flex-wrap: wrap;
    background: var(--secondary-background-color, #f0f0f0); }
  .thumbs img { width: 64px; height: 48px; object-fit: cover; border-radius: 4px;
    cursor: pointer; }
  .body { padding: 12px; display: flex; flex-direction: column; gap: 6px; }
  .line { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: center;
    color: var(--secondary-text-color); font-size: 0.9em; }
  .summary { color: var(--primary-text-color); line-height: 1.4; }
  .chip { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 500;
    font-size: 0.85em; color: var(--text-primary-color, #fff); text-transform: capitalize; }
  .chip.low { background: var(--success-color, #43a047); }
  .chip.medium { background: var(--warning-color, #ffa600); }
  .chip.high { background: var(--state-alarm_control_panel-triggered-color, #f4511e); }
  .chip.critical { background: var(--error-color, #db4437); }
  .tag { padding: 1px 8px; border-radius: 10px; background: var(--secondary-background-color);
    color: var(--primary-text-color); font-size: 0.85em; }
  .tag.unknown { background: var(--error-color, #db4437); color: var(--text-primary-color, #fff); }
  .plate { font-family: monospace; letter-spacing: 0.05em; }
  .actions { display: flex; flex-wrap: wrap; gap: 8px; padding-top: 6px; }
  button { font: inherit; font-size: 0.9em; padding: 6px 14px; cursor: pointer;
    border-radius: 18px; border: 1px solid var(--primary-color, #03a9f4);
    background: transparent; color: var(--primary-color, #03a9f4); }
  button:disabled { opacity: 0.5; cursor: default; }
  button.name { border-color: var(--divider-color); color: var(--primary-text-color); }
  .picker { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; padding-top: 4px; }
  .picker input { font: inherit; padding: 6px 10px; min-width: 0; flex: 1 1 120px;
    border: 1px solid var(--divider-color); border-radius: 8px;
    background: var(--card-background-color); color: var(--primary-text-color); }
  .answer { color: var(--success-color, #43a047); font-weight: 500; }
  .answer.failed { color: var(--error-color, #db4437); }
`;

class HomeSecurityAICard extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._incidents = null;
    this._error = null;
    // Incident key -> what the household answered, shown while the page stays open.
    this._answers = {};
    this._busy = null;
    this._picker = null;
    this._images = new Map();
    this._signature = null;
    this._loadedAt = 0;
  }

  static getStubConfig() {
    return { days: DEFAULT_DAYS, max_incidents: DEFAULT_MAX_INCIDENTS };
  }

  setConfig(config) {
    if (!config) throw new Error("Invalid configuration");
    const days = config.days ?? DEFAULT_DAYS;
    const maxIncidents = config.max_incidents ?? DEFAULT_MAX_INCIDENTS;
    if (typeof days !== "number" || !(days > 0) || days > 30) {
      throw new Error("days must be a number from 1 to 30");
    }
    if (!Number.isInteger(maxIncidents) || maxIncidents < 1 || maxIncidents > 100) {
      throw new Error("max_incidents must be a whole number from 1 to 100");
    }
    if (config.camera !== undefined && (typeof config.camera !== "string" || !config.camera)) {
      throw new Error("camera must be a camera id (front_door) or an entity id");
    }
    this._config = { ...config, days, max_incidents: maxIncidents };
    this._incidents = null;
    if (this._hass) this._load();
  }

  set hass(hass) {
    const first = !this._hass;
    this._hass = hass;
    // A new security event changes the state of a camera's event entity: reload then (a
    // burst of events once).
    const signature = this._eventSignature(hass);
    if (signature !== this._signature) {
      this._signature = signature;
      this._stale = true;
    }
    const age = Date.now() - this._loadedAt;
    if (first || (this._stale && age > 2_000) || age > RELOAD_EVERY_MS) this._load();
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    const shown = this._incidents ? this._incidents.length : 1;
    return 1 + 6 * Math.max(1, shown);
  }

  _eventSignature(hass) {
    // The registry changes rarely, states often: the event entities are found once per change.
    if (hass.entities !== this._registry) {
      this._registry = hass.entities;
      this._eventEntities = Object.values(hass.entities || {})
        .filter((entry) => entry.platform === DOMAIN && entry.entity_id.startsWith("event."))
        .map((entry) => entry.entity_id);
    }
    return this._eventEntities.map((id) => `${id}=${hass.states[id]?.state}`).join("|");
  }

  // Which events: a camera id, or the camera of an entity (its device when it is ours).
  _cameraFilter() {
    const camera = this._config.camera;
    if (!camera) return {};
    if (!camera.includes(".")) return { camera_id: [camera] };
    const entry = this._hass.entities?.[camera];
    if (entry && entry.platform === DOMAIN && entry.device_id) {
      return { device_id: [entry.device_id] };
    }
    // Another integration's camera: its id is made from the entity's name (sources/camera_ids.py).
    return { camera_id: [camera.split(".", 2)[1]] };
  }

  async _callService(service, data, returnResponse = false) {
    const message = {
      type: "call_service",
      domain: DOMAIN,
      service,
      service_data: data,
    };
    if (returnResponse) message.return_response = true;
    const result = await this._hass.callWS(message);
    return result && result.response;
  }

  async _load() {
    if (!this._config || !this._hass || this._loading) return;
    this._loading = true;
    this._stale = false;
    this._loadedAt = Date.now();
    try {
      const start = new Date(Date.now() - this._config.days * 86_400_000).toISOString();
      const response = await this._callService(
        "get_events",
        { start, limit: EVENT_LIMIT, ...this._cameraFilter() },
        true,
      );
      this._incidents = groupIncidents(response.events || []).slice(
        0,
        this._config.max_incidents,
      );
      this._error = null;
    } catch (err) {
      this._error = errorText(err);
    } finally {
      this._loading = false;
    }
    this._render();
  }

  // The address of a snapshot: the media source signs it for the browser.
  _imageUrl(mediaId) {
    if (!this._images.has(mediaId)) {
      const url = this._hass
        .callWS({ type: "media_source/resolve_media", media_content_id: mediaId })
        .then((result) => result.url)
        .catch(() => {
          this._images.delete(mediaId);
          return null;
        });
      this._images.set(mediaId, url);
    }
    return this._images.get(mediaId);
  }

  _names(incident) {
    // The household's people (person entities) and known names seen by the cameras.
    const persons = Object.keys(this._hass.states)
      .filter((id) => id.startsWith("person."))
      .map((id) => this._hass.states[id].attributes.friendly_name || id.slice(7));
    const seen = (this._incidents || []).flatMap((item) => item.people);
    return unique([...persons, ...incident.people, ...seen])
      .filter((name) => name !== "unknown person")
      .sort();
  }

  _render() {
    const root = this.shadowRoot;
    // A name being typed survives a reload of the incidents.
    const typed = root.querySelector(".picker input")?.value;
    const title = this._config.title ?? "Security incidents";
    let content;
    if (this._error) {
      content = `<div class="error">Could not load the incidents: ${escapeHtml(this._error)}</div>`;
    } else if (this._incidents === null) {
      content = `<div class="empty">Loading…</div>`;
    } else if (!this._incidents.length) {
      content = `<div class="empty">No incidents in the last ${escapeHtml(this._config.days)} days.</div>`;
    } else {
      content = this._incidents.map((incident) => this._renderIncident(incident)).join("");
    }
    root.innerHTML = `<style>${STYLE}</style><ha-card>
      ${title ? `<div class="header">${escapeHtml(title)}</div>` : ""}
      <div class="content">${content}</div></ha-card>`;
    const input = root.querySelector(".picker input");
    if (input && typed) input.value = typed;
    this._wire();
  }

  _renderIncident(incident) {
    const [first, ...others] = incident.snapshots;
    const key = escapeHtml(incident.key);
    const time = incident.end.toLocaleString(this._hass.locale?.language || undefined, {
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      day: "numeric",
      month: "short",
    });
    const people = incident.people
      .map((name) => `<span class="tag ${name === "unknown person" ? "unknown" : ""}">${escapeHtml(name)}</span>`)
      .join("");
    const plates = incident.plates
      .map((plate) => `<span class="tag plate">${escapeHtml(plate)}</span>`)
      .join("");
    const answers = this._answers[incident.key] || [];
    const busy = this._busy === incident.key ? "disabled" : "";
    let picker = "";
    if (this._picker === incident.key) {
      picker = `<div class="picker">
        ${this._names(incident)
          .map((name) => `<button class="name" data-action="person" data-key="${key}" data-name="${escapeHtml(name)}" ${busy}>${escapeHtml(name)}</button>`)
          .join("")}
        <input type="text" maxlength="60" placeholder="Another name" aria-label="Another name" data-key="${key}">
        <button data-action="person-typed" data-key="${key}" ${busy}>Save</button>
      </div>`;
    }
    const cameraIds = escapeHtml(incident.cameras.map((camera) => camera.id).join(","));
    return `<div class="incident" data-incident="${key}" data-cameras="${cameraIds}">
      ${first ? `<img class="snapshot" alt="Snapshot" data-media="${escapeHtml(first)}">` : ""}
      ${others.length ? `<div class="thumbs">${others.map((id) => `<img alt="Snapshot" data-media="${escapeHtml(id)}">`).join("")}</div>` : ""}
      <div class="body">
        <div class="line">
          <span class="chip ${incident.level}">${escapeHtml(incident.level)} · ${escapeHtml(incident.score)}</span>
          <span class="time">${escapeHtml(time)}</span>
          <span class="cameras">${escapeHtml(incident.cameras.map((camera) => camera.name).join(", "))}</span>
          ${incident.events.length > 1 ? `<span>${incident.events.length} events</span>` : ""}
        </div>
        <div class="summary">${escapeHtml(incident.summary)}</div>
        ${people || plates ? `<div class="line">${people}${plates}</div>` : ""}
        ${answers.map((answer) => `<div class="answer ${answer.failed ? "failed" : ""}">${escapeHtml(answer.text)}</div>`).join("")}
        <div class="actions">
          <button data-action="false-alarm" data-key="${key}" ${busy}>False alarm</button>
          <button data-action="pick" data-key="${key}" ${busy}>It was …</button>
          <button data-action="snooze" data-key="${key}" ${busy}>Snooze 1 h</button>
        </div>
        ${picker}
      </div>
    </div>`;
  }

  _wire() {
    const root = this.shadowRoot;
    for (const img of root.querySelectorAll("img[data-media]")) {
      this._imageUrl(img.dataset.media).then((url) => {
        if (url) img.src = url;
      });
    }
    for (const img of root.querySelectorAll(".thumbs img")) {
      // A thumbnail swaps places with the large snapshot.
      img.addEventListener("click", () => {
        const large = img.closest(".incident").querySelector(".snapshot");
        [large.src, img.src] = [img.src, large.src];
        [large.dataset.media, img.dataset.media] = [img.dataset.media, large.dataset.media];
      });
    }
    for (const button of root.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => this._act(button.dataset.action, button));
    }
    for (const input of root.querySelectorAll(".picker input")) {
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") this._act("person-typed", input);
      });
    }
  }

  async _act(action, element) {
    const incident = this._incidents.find((item) => item.key === element.dataset.key);
    if (!incident) return;
    if (action === "pick") {
      this._picker = this._picker === incident.key ? null : incident.key;
      this._render();
      return;
    }
    let name = null;
    if (action === "person") name = element.dataset.name;
    if (action === "person-typed") {
      const input = this.shadowRoot.querySelector(`.picker input`);
      name = input.value.trim();
      if (!name) {
        input.focus();
        return;
      }
    }
    this._busy = incident.key;
    this._render();
    const answers = (this._answers[incident.key] = this._answers[incident.key] || []);
    try {
      if (action === "snooze") {
        for (const camera of incident.cameras) {
          await this._callService("pause_analysis", { camera_id: camera.id, duration: SNOOZE });
        }
        const names = incident.cameras.map((camera) => camera.name).join(", ");
        answers.push({ text: `Snoozed ${names} for 1 hour` });
      } else {
        // "It was Anna": not a threat after all, in the household's own words, which the
        // server keeps with the verdict and weighs on the camera's next similar cases.
        const feedback = name
          ? { verdict: "false_alarm", actual_level: "low", what: `It was ${name}` }
          : { verdict: "false_alarm" };
        await this._sendFeedback(incident, feedback);
        answers.push({ text: name ? `Marked: it was ${name}` : "Marked as false alarm" });
        this._picker = null;
      }
    } catch (err) {
      answers.push({ text: `Could not send the answer: ${errorText(err)}`, failed: true });
    } finally {
      this._busy = null;
    }
    this._render();
    this._load();
  }

  // The verdict on every event of the incident (the server knows some of them, at least).
  async _sendFeedback(incident, feedback) {
    let sent = 0;
    let failure = null;
    for (const event of incident.events.slice(0, MAX_FEEDBACK_EVENTS)) {
      try {
        await this._callService("feedback", { event_id: event.event_id, ...feedback }, true);
        sent += 1;
      } catch (err) {
        failure = err;
      }
    }
    if (!sent && failure) throw failure;
  }
}

if (!customElements.get(CARD_TYPE)) {
  customElements.define(CARD_TYPE, HomeSecurityAICard);
  window.customCards = window.customCards || [];
  window.customCards.push({
    type: CARD_TYPE,
    name: "Home Security AI incidents",
    description:
      "The incidents of the last days: snapshots, risk, summary, people and plates; answer them.",
    preview: false,
    documentationURL: "https://github.com/home-security-ai/home-security-ai#dashboard-card",
  });
}
