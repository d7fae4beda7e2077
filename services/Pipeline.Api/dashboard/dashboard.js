// The production dashboard: reads the admin API with the viewer's key and redraws itself every few seconds.
// The key comes from the form, or once from the address (#key=...), and is kept for this browser tab only.
"use strict";

const refreshSeconds = 10;
const keyName = "pipeline-api-key";
const stageColours = {
  staging: "#1f77b4", reconstruction: "#ff7f0e", collection: "#2ca02c", merge: "#9467bd", archive: "#d62728",
};
const charts = {};

function takeKeyFromAddress() {
  const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(keyName, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
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
    cell(row, file.logicalName).classList.add("mono");
    cell(row, String(file.attempt));
    cell(row, file.failureReason ?? "");
    const logs = cell(row, "");
    for (const name of file.logNames.filter(n => n.endsWith(".log"))) {
      const link = document.createElement("a");
      link.textContent = name.split("/").slice(-2).join("/");
      link.href = "#";
      link.addEventListener("click", event => { event.preventDefault(); openLog(name); });
      logs.append(link, " ");
    }
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

function hourLabels(hours) {
  return hours.map(h => new Date(h).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
}

function drawThroughput(activity) {
  if (typeof Chart === "undefined") {
    return;
  }
  const now = new Date();
  now.setUTCMinutes(0, 0, 0);
  const hours = Array.from({ length: 24 }, (_, i) => now.getTime() - (23 - i) * 3600_000);
  const stages = [...new Set(activity.map(a => a.stage))].sort();
  for (const [id, field] of [["files-chart", "files"], ["bytes-chart", "bytes"]]) {
    const datasets = stages.map(stage => ({
      label: stage,
      borderColor: stageColours[stage] ?? "#555",
      backgroundColor: stageColours[stage] ?? "#555",
      data: hours.map(h => activity.find(a => a.stage === stage && new Date(a.hour).getTime() === h)?.[field] ?? 0),
    }));
    if (charts[id]) {
      charts[id].data.labels = hourLabels(hours);
      charts[id].data.datasets = datasets;
      charts[id].update("none");
    } else {
      charts[id] = new Chart(document.getElementById(id), {
        type: "line",
        data: { labels: hourLabels(hours), datasets },
        options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
      });
    }
  }
  document.getElementById("board").dataset.charts = "drawn";
}

async function refresh() {
  const board = document.getElementById("board");
  try {
    const [summary, activity, alerts, instances, controls, campaignControls, flow] = await Promise.all(
      [api("/api/summary"), api("/api/throughput?hours=24"), api("/api/alerts"), api("/api/instances"), api("/api/stages"), api("/api/campaigns"), api("/api/flow")]);
    drawFlow(flow);
    drawCampaigns(campaignControls);
    drawAlerts(alerts);
    drawInstances(instances);
    drawStates(summary, campaignControls);
    drawStages(summary, controls);
    drawFailures(summary);
    drawThroughput(activity);
    await drawFailedFiles();
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

takeKeyFromAddress();
refresh();
setInterval(refresh, refreshSeconds * 1000);
