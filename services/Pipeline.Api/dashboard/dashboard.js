// The production dashboard: reads the admin API with the viewer's key and redraws itself every few seconds.
// The key comes from the form, or once from the address (#key=...), and is kept for this browser tab only.
// The rest of the address says what is looked at: #run=N (a run), #file=ID (a file), #q=TEXT (a search),
// #range=minute:6 and #campaign=NAME (the throughput charts); each view can so be linked to.
"use strict";

const refreshSeconds = 10;
const keyName = "pipeline-api-key";
const stageColours = {
  staging: "#1f77b4", reconstruction: "#ff7f0e", collection: "#2ca02c", merge: "#9467bd", archive: "#d62728",
};
const charts = {};

function address() {
  return new URLSearchParams(location.hash.slice(1));
}

function setAddress(changes) {
  const params = address();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === "") {
      params.delete(name);
    } else {
      params.set(name, value);
    }
  }
  location.hash = params.toString();
}

function takeKeyFromAddress() {
  const params = address();
  if (params.has("key")) {
    sessionStorage.setItem(keyName, params.get("key"));
    params.delete("key");
    // The key leaves the address (and the history) at once; what is looked at stays.
    history.replaceState(null, "", location.pathname + location.search + (params.size > 0 ? `#${params}` : ""));
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { "X-Api-Key": sessionStorage.getItem(keyName) ?? "" } });
  if (response.status === 401 || response.status === 403) {
    throw Object.assign(new Error("The API refused the key."), { refused: true });
  }
  if (!response.ok) {
    throw new Error(`${path} answered ${response.status}`);
  }
  return response.json();
}

function cell(row, text, metric) {
  const td = row.insertCell();
  td.textContent = text;
  if (metric) {
    td.dataset.metric = metric;
  }
  return td;
}

function bytes(value) {
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function setNumber(metric, value, text) {
  const element = document.querySelector(`[data-metric="${metric}"]`);
  element.textContent = text ?? String(value);
  element.dataset.value = String(value);
}

function drawStates(summary, campaignControls) {
  const table = document.getElementById("states");
  const states = [...new Set(summary.states.map(s => s.state))].sort();
  const campaigns = [...new Set(summary.states.map(s => s.campaign))].sort();
  table.tHead.replaceChildren();
  const head = table.tHead.insertRow();
  cell(head, "Campaign");
  states.forEach(state => cell(head, state));
  cell(head, "All");
  table.tBodies[0].replaceChildren();
  for (const campaign of campaigns) {
    const row = table.tBodies[0].insertRow();
    const control = campaignControls.find(c => c.campaign === campaign);
    cell(row, control?.paused ? `${campaign} (paused by ${control.by})` : campaign, `campaign:${campaign}`);
    let all = 0;
    for (const state of states) {
      const count = summary.states.find(s => s.campaign === campaign && s.state === state)?.files ?? 0;
      all += count;
      cell(row, String(count), `state:${campaign}:${state}`);
    }
    cell(row, String(all), `files:${campaign}`);
  }
  setNumber("runs", summary.runs);
  setNumber("merged-files", summary.mergedFiles);
  setNumber("merged-bytes", summary.mergedBytes, bytes(summary.mergedBytes));
  setNumber("merged-events", summary.mergedEvents);
  for (const stage of ["reconstruction", "archive"]) {
    const use = summary.utilisation.find(u => u.stage === stage);
    setNumber(`busy:${stage}`, use ? `${use.busy}/${use.capacity}` : "0/0");
  }
}

// Throughput is named by what a stage does, control by its queue.
const queueOf = { staging: "stager", reconstruction: "reconstruction", collection: "collector", merge: "merger", archive: "archiver" };

function drawStages(summary, controls) {
  const body = document.querySelector("#stages tbody");
  body.replaceChildren();
  for (const stage of summary.stages) {
    const row = body.insertRow();
    const control = controls.find(c => c.stage === queueOf[stage.stage]);
    cell(row, stage.stage);
    cell(row, control?.paused ? `paused by ${control.by}` : "", `stage-paused:${stage.stage}`);
    cell(row, String(stage.filesThisHour), `stage-files-hour:${stage.stage}`);
    cell(row, bytes(stage.bytesThisHour));
    cell(row, String(stage.filesLast24Hours), `stage-files-day:${stage.stage}`);
    cell(row, bytes(stage.bytesLast24Hours));
  }
}

function nothing(body, columns, text) {
  const td = body.insertRow().insertCell();
  td.colSpan = columns;
  td.textContent = text;
  td.classList.add("muted");
}

function drawFailures(summary) {
  const body = document.querySelector("#failures tbody");
  body.replaceChildren();
  if (summary.failures.length === 0) {
    nothing(body, 7, "No failed files.");
  }
  for (const failure of summary.failures) {
    const row = body.insertRow();
    cell(row, String(failure.files), `failure-files:${failure.id}`);
    cell(row, failure.campaign);
    cell(row, failure.stage);
    cell(row, failure.signature).classList.add("mono");
    cell(row, failure.release ?? "");
    cell(row, new Date(failure.lastFailedAt).toLocaleString());
    cell(row, failure.exampleReason);
  }
}

function drawAlerts(alerts) {
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren();
  if (alerts.length === 0) {
    nothing(body, 4, "No active alert.");
  }
  for (const alert of alerts) {
    const row = body.insertRow();
    row.classList.add(alert.severity);
    cell(row, alert.severity);
    cell(row, alert.key, `alert:${alert.key}`).classList.add("mono");
    cell(row, new Date(alert.raisedAt).toLocaleString());
    cell(row, alert.message);
  }
  document.querySelector("[data-metric=alerts]").textContent = String(alerts.length);
}

function drawFlow(flow) {
  setNumber("movers", `${flow.movers.inUse}/${flow.movers.limit}`);
  const areas = document.querySelector("#areas tbody");
  areas.replaceChildren();
  for (const area of flow.areas) {
    const row = areas.insertRow();
    cell(row, area.area);
    cell(row, area.quotaBytes > 0 ? bytes(area.quotaBytes) : "unbounded");
    cell(row, bytes(area.usedBytes), `area-used:${area.area}`).dataset.value = String(area.usedBytes);
    cell(row, String(area.files));
    cell(row, bytes(area.peakBytes));
    cell(row, area.blocked ? "no: above its high-water mark" : "yes", `area-blocked:${area.area}`);
  }
  const datasets = document.querySelector("#datasets tbody");
  datasets.replaceChildren();
  for (const dataset of flow.datasets) {
    const row = datasets.insertRow();
    cell(row, `${dataset.campaign}/${dataset.dataset}`);
    cell(row, dataset.ordering, `ordering:${dataset.campaign}/${dataset.dataset}`);
    cell(row, dataset.copies.join(", "));
  }
}

function drawCampaigns(campaigns) {
  const body = document.querySelector("#campaigns tbody");
  body.replaceChildren();
  for (const campaign of campaigns) {
    const forecast = campaign.forecast;
    const row = body.insertRow();
    const status = campaign.paused ? `paused by ${campaign.by}` : campaign.status;
    cell(row, campaign.campaign, `campaign-name:${campaign.campaign}`);
    cell(row, campaign.kind ?? "");
    cell(row, status, `campaign-status:${campaign.campaign}`);
    cell(row, String(campaign.priority));
    cell(row, [campaign.release, campaign.calibrationTag].filter(x => x).join(" / "));
    cell(row, `${forecast.done}/${forecast.files}`, `campaign-done:${campaign.campaign}`).dataset.value = String(forecast.done);
    cell(row, String(forecast.remaining), `campaign-remaining:${campaign.campaign}`);
    cell(row, String(forecast.failed));
    cell(row, forecast.stages.map(s => `${s.stage} ${s.filesPerMinute}/min`).join(", "));
    cell(row, forecast.bottleneck ?? "", `campaign-bottleneck:${campaign.campaign}`);
    cell(row, forecast.remaining === 0 ? "done" : forecast.estimatedCompletion ? new Date(forecast.estimatedCompletion).toLocaleString() : "not yet measured");
    cell(row, campaign.stale ?? "");
  }
}

function drawInstances(instances) {
  const body = document.querySelector("#instances tbody");
  body.replaceChildren();
  for (const instance of instances) {
    const row = body.insertRow();
    cell(row, instance.instance, `instance:${instance.instance}`).classList.add("mono");
    cell(row, instance.services);
    cell(row, instance.host);
    cell(row, instance.load.map(l => `${l.stage} ${l.busy}/${l.capacity}`).join(", "));
    cell(row, new Date(instance.startedAt).toLocaleString());
    cell(row, new Date(instance.lastSeenAt).toLocaleTimeString());
  }
}

async function drawFailedFiles() {
  const page = await api("/api/files?state=Failed&limit=10");
  const files = await Promise.all(page.files.map(f => api(`/api/files/${f.id}`)));
  const body = document.querySelector("#failed-files tbody");
  body.replaceChildren();
  if (files.length === 0) {
    nothing(body, 5, "No failed files.");
  }
  for (const file of files) {
    const row = body.insertRow();
    cell(row, String(file.run));
    row.insertCell().append(fileLink(file.correlationId, file.logicalName));
    row.cells[1].classList.add("mono");
    cell(row, String(file.attempt));
    cell(row, file.failureReason ?? "");
    logLinks(cell(row, ""), file.logNames.filter(n => n.endsWith(".log")));
  }
}

async function openLog(name) {
  const response = await fetch(`/api/logs/${name}`, { headers: { "X-Api-Key": sessionStorage.getItem(keyName) ?? "" } });
  const text = await response.text();
  const page = window.open("", "_blank");
  if (page) {
    page.document.title = name;
    const pre = page.document.createElement("pre");
    pre.textContent = text;
    page.document.body.append(pre);
  }
}

function stepLabel(time, resolution) {
  const at = new Date(time);
  return resolution === "minute"
    ? at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : at.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" });
}

// The throughput as stored (per minute or per hour, per stage and campaign): every step of the range is plotted,
// a step with nothing done as 0.
async function drawThroughput() {
  const [resolution, hours] = (address().get("range") ?? "minute:6").split(":");
  const campaign = address().get("campaign") ?? "";
  document.getElementById("throughput-range").value = `${resolution}:${hours}`;
  document.getElementById("throughput-campaign").value = campaign;
  const query = new URLSearchParams({ resolution, hours });
  if (campaign) {
    query.set("campaign", campaign);
  }
  const activity = await api(`/api/throughput?${query}`);
  const step = resolution === "minute" ? 60_000 : 3600_000;
  const last = Math.floor(Date.now() / step) * step;
  const count = Number(hours) * 3600_000 / step;
  const times = Array.from({ length: count }, (_, i) => last - (count - 1 - i) * step);
  const stages = Object.keys(stageColours).filter(stage => activity.some(a => a.stage === stage));
  const totals = document.getElementById("throughput-totals");
  totals.replaceChildren();
  for (const stage of stages) {
    const files = activity.filter(a => a.stage === stage).reduce((sum, a) => sum + a.files, 0);
    const total = document.createElement("span");
    total.textContent = `${stage}: ${files} files `;
    total.dataset.metric = `plotted-files:${stage}`;
    total.dataset.value = String(files);
    totals.append(total);
  }
  document.getElementById("files-caption").textContent = `files per ${resolution}`;
  document.getElementById("bytes-caption").textContent = `bytes per ${resolution}`;
  if (typeof Chart === "undefined") {
    return;
  }
  for (const [id, field] of [["files-chart", "files"], ["bytes-chart", "bytes"]]) {
    const datasets = stages.map(stage => {
      const byTime = new Map();
      for (const a of activity.filter(a => a.stage === stage)) {
        const at = new Date(a.at).getTime();
        byTime.set(at, (byTime.get(at) ?? 0) + a[field]);
      }
      return {
        label: stage,
        borderColor: stageColours[stage],
        backgroundColor: stageColours[stage],
        pointRadius: 0,
        data: times.map(t => byTime.get(t) ?? 0),
      };
    });
    const labels = times.map(t => stepLabel(t, resolution));
    if (charts[id]) {
      charts[id].data.labels = labels;
      charts[id].data.datasets = datasets;
      charts[id].update("none");
    } else {
      charts[id] = new Chart(document.getElementById(id), {
        type: "line",
        data: { labels, datasets },
        options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
      });
    }
  }
  document.getElementById("board").dataset.charts = "drawn";
}

function fillCampaigns(campaigns) {
  const select = document.getElementById("throughput-campaign");
  const chosen = address().get("campaign") ?? "";
  const names = campaigns.map(c => c.campaign);
  if ([...select.options].slice(1).map(o => o.value).join() !== names.join()) {
    select.replaceChildren(new Option("all campaigns", ""), ...names.map(name => new Option(name, name)));
  }
  select.value = chosen;
}

// A link to a file's page that keeps the rest of what is looked at (the run, the charts' range).
function fileLink(id, text) {
  const params = address();
  params.set("file", id);
  params.delete("q");
  const link = document.createElement("a");
  link.href = `#${params}`;
  link.textContent = text;
  return link;
}

// A run's view reads every file of the run: it is read again when another run is chosen, else once a minute.
const runViewSeconds = 60;
let runViewDrawn = { run: null, at: 0 };

async function drawRunView(runs) {
  const select = document.getElementById("run-select");
  const numbers = runs.map(r => r.run).sort((a, b) => b - a);
  if ([...select.options].map(o => o.value).join() !== numbers.join()) {
    select.replaceChildren(...numbers.map(run => new Option(String(run), String(run))));
  }
  const chosen = address().get("run") ?? (numbers.length > 0 ? String(numbers[0]) : null);
  const section = document.getElementById("runs-section");
  section.classList.toggle("asked", address().has("run"));
  if (chosen === null) {
    section.dataset.state = "empty";
    return;
  }
  select.value = chosen;
  if (runViewDrawn.run === chosen && Date.now() - runViewDrawn.at < runViewSeconds * 1000) {
    return;
  }
  const run = await api(`/api/runs/${encodeURIComponent(chosen)}`);
  runViewDrawn = { run: chosen, at: Date.now() };
  document.getElementById("run-title").textContent =
    `${run.announcedFiles} raw files announced${run.registeredAt ? ` ${new Date(run.registeredAt).toLocaleString()}` : ""}${run.truncated ? "; only the first files are shown" : ""}`;
  const states = document.querySelector("#run-states tbody");
  const failures = document.querySelector("#run-failures tbody");
  states.replaceChildren();
  failures.replaceChildren();
  for (const campaign of run.campaigns) {
    for (const state of campaign.states) {
      const row = states.insertRow();
      cell(row, campaign.campaign);
      cell(row, state.state);
      cell(row, String(state.files), `run-files:${campaign.campaign}:${state.state}`).dataset.value = String(state.files);
      cell(row, String(state.events), `run-events:${campaign.campaign}:${state.state}`).dataset.value = String(state.events);
      cell(row, bytes(state.bytes), `run-bytes:${campaign.campaign}:${state.state}`).dataset.value = String(state.bytes);
    }
    campaign.failures.forEach((failure, i) => {
      const row = failures.insertRow();
      cell(row, campaign.campaign);
      cell(row, String(failure.files), `run-failure:${campaign.campaign}:${i}`).dataset.value = String(failure.files);
      cell(row, failure.reason);
    });
  }
  if (failures.rows.length === 0) {
    nothing(failures, 3, "No failed file in this run.");
  }
  const files = document.querySelector("#run-files tbody");
  files.replaceChildren();
  for (const file of run.files) {
    const row = files.insertRow();
    cell(row, file.campaign);
    cell(row, file.stream);
    row.insertCell().append(fileLink(file.id, file.logicalName));
    row.cells[2].classList.add("mono");
    cell(row, file.state, `run-file-state:${file.id}`);
    cell(row, String(file.attempt));
    cell(row, String(file.events));
    cell(row, bytes(file.size));
    cell(row, file.failureReason ?? "");
  }
  section.dataset.state = "ready";
  section.dataset.run = String(run.run);
}

function fact(body, name, value, metric) {
  const row = body.insertRow();
  const th = document.createElement("th");
  th.textContent = name;
  row.append(th);
  return cell(row, value, metric);
}

function logLinks(target, names) {
  target.replaceChildren();
  for (const name of names) {
    const link = document.createElement("a");
    link.textContent = name.split("/").slice(-2).join("/");
    link.href = `/api/logs/${name}`;
    link.dataset.log = name;
    link.addEventListener("click", event => { event.preventDefault(); openLog(name); });
    target.append(link, " ");
  }
}

async function drawFilePage() {
  const section = document.getElementById("file-section");
  const results = document.getElementById("search-results");
  const query = address().get("q");
  let id = address().get("file");
  if (!id && query) {
    document.getElementById("search-input").value = query;
    const found = await api(`/api/search?q=${encodeURIComponent(query)}`);
    results.replaceChildren(`${found.length} file${found.length === 1 ? "" : "s"} found for "${query}"${found.length > 0 ? ": " : "."}`);
    for (const file of found) {
      const link = fileLink(file.id, `${file.logicalName} (${file.campaign}, ${file.state})`);
      link.dataset.found = file.id;
      results.append(link, " ");
    }
    section.dataset.found = String(found.length);
    id = found.length === 1 ? found[0].id : null;
  }
  const page = document.getElementById("file-page");
  // The view asked for comes first on the page.
  section.classList.toggle("asked", Boolean(id || query));
  if (!id) {
    page.hidden = true;
    return;
  }
  const file = await api(`/api/files/${encodeURIComponent(id)}`);
  document.getElementById("file-title").textContent = file.logicalName;
  const facts = document.querySelector("#file-facts tbody");
  facts.replaceChildren();
  fact(facts, "Id", file.correlationId, "file-id").classList.add("mono");
  fact(facts, "Campaign", file.campaign, "file-campaign");
  fact(facts, "Run / stream", `${file.run} / ${file.stream}`, "file-run").dataset.value = String(file.run);
  fact(facts, "State", file.currentState, "file-state");
  fact(facts, "Attempt", `${file.attempt} of ${file.maxAttempts + file.extraAttempts}`, "file-attempt").dataset.value = String(file.attempt);
  fact(facts, "Size", bytes(file.size), "file-size").dataset.value = String(file.size);
  fact(facts, "Events", String(file.events), "file-events");
  fact(facts, "Adler-32", file.adler32).classList.add("mono");
  fact(facts, "Trace id", file.traceId, "file-trace").classList.add("mono");
  if (file.failureReason) {
    fact(facts, "Failure", file.failureReason, "file-failure");
  }
  const history = document.querySelector("#file-history tbody");
  history.replaceChildren();
  file.history.forEach((entry, i) => {
    const row = history.insertRow();
    cell(row, new Date(entry.at).toLocaleString());
    cell(row, String(entry.attempt));
    cell(row, entry.state, `file-history:${i}`);
    cell(row, entry.event);
    cell(row, entry.detail ?? "");
  });
  const attempts = document.querySelector("#file-attempts tbody");
  attempts.replaceChildren();
  for (const attempt of [...new Set(file.history.map(h => h.attempt))]) {
    const lines = file.history.filter(h => h.attempt === attempt);
    const lastLine = lines[lines.length - 1];
    const row = attempts.insertRow();
    cell(row, String(attempt), `file-attempt-row:${attempt}`);
    cell(row, new Date(lines[0].at).toLocaleString());
    cell(row, new Date(lastLine.at).toLocaleString());
    cell(row, lastLine.state, `file-attempt-state:${attempt}`);
    cell(row, lastLine.detail ?? "");
  }
  const catalog = document.querySelector("#file-catalog tbody");
  catalog.replaceChildren();
  for (const entry of file.catalog) {
    const row = catalog.insertRow();
    cell(row, entry.kind);
    cell(row, entry.area);
    cell(row, entry.name, `file-catalog:${entry.kind}:${entry.name}`).classList.add("mono");
    cell(row, bytes(entry.size));
    cell(row, entry.adler32 ?? "").classList.add("mono");
  }
  logLinks(document.getElementById("file-logs"), file.logNames);
  page.hidden = false;
  section.dataset.file = file.correlationId;
}

async function refresh() {
  const board = document.getElementById("board");
  try {
    const [summary, alerts, instances, controls, campaignControls, flow, runs] = await Promise.all(
      [api("/api/summary"), api("/api/alerts"), api("/api/instances"), api("/api/stages"), api("/api/campaigns"), api("/api/flow"), api("/api/runs")]);
    drawFlow(flow);
    drawCampaigns(campaignControls);
    fillCampaigns(campaignControls);
    drawAlerts(alerts);
    drawInstances(instances);
    drawStates(summary, campaignControls);
    drawStages(summary, controls);
    drawFailures(summary);
    await Promise.all([drawThroughput(), drawFailedFiles(), drawRunView(runs), drawFilePage()]);
    board.dataset.state = "ready";
    document.getElementById("key-form").hidden = true;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    board.dataset.state = "error";
    document.getElementById("updated").textContent = error.message;
    if (error.refused) {
      document.getElementById("key-form").hidden = false;
      document.getElementById("key-problem").textContent = sessionStorage.getItem(keyName) ? "That key was refused." : "";
    }
  }
}

document.getElementById("key-form").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem(keyName, document.getElementById("key-input").value.trim());
  refresh();
});

document.getElementById("search-form").addEventListener("submit", event => {
  event.preventDefault();
  setAddress({ q: document.getElementById("search-input").value.trim(), file: null });
});

document.getElementById("throughput-form").addEventListener("change", () => {
  setAddress({ range: document.getElementById("throughput-range").value, campaign: document.getElementById("throughput-campaign").value });
});

document.getElementById("run-select").addEventListener("change", event => setAddress({ run: event.target.value }));

window.addEventListener("hashchange", refresh);

takeKeyFromAddress();
refresh();
setInterval(refresh, refreshSeconds * 1000);
