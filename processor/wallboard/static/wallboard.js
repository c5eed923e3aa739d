// The wallboard page: Server-Sent Events from `kpi wallboard` -> one row per queue and channel.
// Plain JS, no build step, nothing loaded from elsewhere. URL options (all optional):
//   ?window=today|60m|15m|5m   service level, ASA and abandon rate over this window (default today)
//   &formula=answered_over_offered|answered_over_answered|abandons_positive   (default answered_over_offered)
//   &stale=SECONDS             banner when a queue's figures are older than this (default: the server's)
(function () {
  "use strict";

  var params = new URLSearchParams(location.search);
  var WINDOWS = ["5m", "15m", "60m", "today"];
  var FORMULAS = {
    answered_over_offered: "answered in T ÷ (offered − short abandons)",
    answered_over_answered: "answered in T ÷ answered",
    abandons_positive: "(answered + abandoned in T) ÷ (answered + abandoned)"
  };
  var WINDOW_NAMES = { "5m": "last 5 min", "15m": "last 15 min", "60m": "last 60 min", today: "today" };
  var windowName = WINDOWS.indexOf(params.get("window")) >= 0 ? params.get("window") : "today";
  var trendWindow = windowName === "15m" ? "60m" : "15m";
  var formula = FORMULAS[params.get("formula")] ? params.get("formula") : "answered_over_offered";
  var AMBER_POINTS = 0.05;  // service level within 5 points below target: amber

  var state = {
    queues: {},          // key -> entry
    serverOffset: 0,     // server clock - local clock, ms
    lastMessage: 0,      // local ms of the last message
    staleAfter: Number(params.get("stale")) || 10,
    heartbeat: 2,
    redisUp: true,
    connected: false,
    everConnected: false
  };

  var $ = function (id) { return document.getElementById(id); };
  var rows = {};  // key -> {tr, cells}

  // -- formatting -----------------------------------------------------------------------------
  function duration(s) {
    if (s === null || s === undefined) return "—";
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m)), ss = String(sec).padStart(2, "0");
    return (h ? h + ":" : "") + mm + ":" + ss;
  }
  function pct(r) {
    if (r === null || r === undefined) return "—";
    var p = r * 100;
    return (p > 0 && p < 10 ? p.toFixed(1) : Math.round(p)) + "%";
  }
  function secs(s) {
    if (s === null || s === undefined) return "—";
    return s < 60 ? Math.round(s) + " s" : duration(s);
  }
  function slLevel(sl, target) {
    if (sl === null || sl === undefined) return "none";
    if (sl >= target - 1e-9) return "green";
    if (sl >= target - AMBER_POINTS - 1e-9) return "amber";
    return "red";
  }
  function waitLevel(longest, threshold) {
    if (!longest || !threshold) return "none";
    if (longest > 2 * threshold) return "red";
    if (longest > threshold) return "amber";
    return "none";
  }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function setLevel(el, base, level) {
    var cls = base + " level-" + level;
    if (el.className !== cls) el.className = cls;
  }

  // -- rendering ------------------------------------------------------------------------------
  function makeRow(key) {
    var tr = document.createElement("tr");
    tr.dataset.key = key;
    tr.innerHTML =
      '<td class="q"><div class="qname"><span class="qid"></span><span class="chan"></span></div>' +
      '<div class="qchan"></div></td>' +
      '<td class="num"><div class="big waiting"></div></td>' +
      '<td class="num"><div class="big longest"></div><div class="sub longest-sub"></div></td>' +
      '<td class="num"><div class="big"><span class="pill sl"></span></div><div class="sub sl-sub"></div></td>' +
      '<td class="num"><div class="big asa"></div><div class="sub asa-sub"></div></td>' +
      '<td class="num"><div class="big abandon"></div><div class="sub abandon-sub"></div></td>' +
      '<td><div class="agents"></div><div class="sub staffing"></div></td>';
    var c = {};
    ["qid", "chan", "qchan", "waiting", "longest", "longest-sub", "sl", "sl-sub", "asa", "asa-sub", "abandon",
     "abandon-sub", "agents", "staffing"].forEach(function (name) { c[name] = tr.querySelector("." + name); });
    return { tr: tr, cells: c, agentsKey: null };
  }

  function renderRow(row, e) {
    var c = row.cells, w = e["window:" + windowName] || {}, trend = e["window:" + trendWindow] || {};
    var target = e.service_level_target, threshold = e.threshold_seconds;
    setText(c.qid, e.queue_id);
    setText(c.chan, e.channel);
    setText(c.qchan, "offered " + (w.offered || 0) + " · answered " + (w.answered || 0));
    setText(c.waiting, String(e.waiting));
    setText(c.longest, e.waiting ? duration(e.longest_wait_seconds) : "—");
    setLevel(c.longest, "big longest", waitLevel(e.waiting ? e.longest_wait_seconds : 0, threshold));
    // at risk: still within T now, past it within at_risk_seconds; breached: already past T
    var risk = (e.at_risk || 0) + " at risk" + (e.breached_waiting ? " · " + e.breached_waiting + " over T" : "");
    setText(c["longest-sub"], "T = " + Math.round(threshold) + " s · " + risk);
    c["longest-sub"].classList.toggle("risk", !!(e.at_risk || e.breached_waiting));
    var sl = w.service_level ? w.service_level[formula] : null;
    setText(c.sl, pct(sl));
    setLevel(c.sl, "pill sl", slLevel(sl, target));
    var trendSl = trend.service_level ? trend.service_level[formula] : null;
    setText(c["sl-sub"], "target " + pct(target) + " · " + trendWindow + " " + pct(trendSl));
    setText(c.asa, secs(w.asa_seconds));
    setText(c["asa-sub"], trendWindow + " " + secs(trend.asa_seconds));
    setText(c.abandon, pct(w.abandon_rate));
    setText(c["abandon-sub"], (w.abandoned || 0) + " abandoned · " + (w.short_abandoned || 0) + " short");
    var st = e.staffing || {};
    setText(c.staffing, st.need === null || st.need === undefined ? "need — / have " + (st.have === null ||
      st.have === undefined ? "—" : st.have) : "need " + st.need + " / have " + st.have);
    c.staffing.classList.toggle("short", st.need !== null && st.need !== undefined && st.have < st.need);
    c.staffing.title = st.model ? "agents needed now by " + (st.model === "erlang_a" ? "Erlang A (with abandonment)"
      : "Erlang C") + " for T and the target; staffed now" : "not enough data for a staffing figure yet";
    var agents = e.agents || {};
    var agentsKey = JSON.stringify(agents);
    if (agentsKey !== row.agentsKey) {
      row.agentsKey = agentsKey;
      var order = ["available", "busy", "acw", "away"];
      var html = "";
      order.forEach(function (s) {
        html += '<div class="chip ' + s + '"><b>' + (agents[s] || 0) + '</b><span>' +
          (s === "acw" ? "ACW" : s === "available" ? "ready" : s) + "</span></div>";
      });
      c.agents.innerHTML = html;
    }
  }

  function render() {
    var keys = Object.keys(state.queues).sort();
    var tbody = $("rows");
    Object.keys(rows).forEach(function (k) {
      if (!state.queues[k]) { tbody.removeChild(rows[k].tr); delete rows[k]; }
    });
    keys.forEach(function (k, i) {
      var row = rows[k];
      if (!row) { row = rows[k] = makeRow(k); }
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      renderRow(row, state.queues[k]);
    });
    $("board").hidden = keys.length === 0;
    $("empty").hidden = keys.length !== 0;
    if (keys.length !== fitted) { fitted = keys.length; fit(); }
    var newest = 0;
    keys.forEach(function (k) { newest = Math.max(newest, state.queues[k].stream_time_ms || 0); });
    setText($("stream"), newest ? "events up to " + new Date(newest).toLocaleString() : "no events yet");
    checkStale();
  }

  // The largest type that fits the screen: a TV shows every queue without scrolling.
  var fitted = -1;
  function fit() {
    var root = document.documentElement, size = Math.min(48, Math.max(14, window.innerWidth * 0.0145)), n = 0;
    document.body.style.fontSize = size + "px";
    while ((root.scrollHeight > window.innerHeight + 1 || root.scrollWidth > window.innerWidth + 1) &&
           size > 8 && n++ < 40) {
      size *= 0.93;
      document.body.style.fontSize = size + "px";
    }
  }
  window.addEventListener("resize", fit);

  function checkStale() {
    var now = Date.now(), serverNow = now + state.serverOffset, msg = "", bad = false, oldest = 0;
    Object.keys(state.queues).forEach(function (k) {
      var age = (serverNow - (state.queues[k].confirmed_at_ms || 0)) / 1000;
      var stale = age > state.staleAfter;
      if (rows[k]) rows[k].tr.classList.toggle("stale", stale);
      if (stale) oldest = Math.max(oldest, age);
    });
    var silent = state.lastMessage ? (now - state.lastMessage) / 1000 : 0;
    if (!state.connected) {
      msg = state.everConnected ? "Connection to the wallboard server lost — reconnecting…"
                                : "Connecting to the wallboard server…";
      bad = state.everConnected;
    } else if (silent > Math.max(3 * state.heartbeat, 5)) {
      msg = "No data from the wallboard server for " + Math.round(silent) + " s";
      bad = true;
    } else if (!state.redisUp) {
      msg = "Stale: the wallboard server cannot reach Redis";
      bad = true;
    } else if (oldest > 0) {
      msg = "Stale: figures not updated for " + duration(oldest);
    }
    var banner = $("banner");
    setText(banner, msg);
    banner.hidden = !msg;
    banner.className = bad ? "banner bad" : "banner";
    document.body.classList.toggle("stale", !!msg);
    var conn = $("conn");
    conn.className = "conn " + (state.connected && !msg ? "ok" : "bad");
    setText($("clock"), new Date(serverNow).toLocaleTimeString());
  }

  function legend() {
    $("window-label").textContent = "Service level " + WINDOW_NAMES[windowName] + ": " + FORMULAS[formula];
    $("legend").innerHTML =
      'Service level colour: <span class="sw" style="background:var(--green)"></span> at or above target · ' +
      '<span class="sw" style="background:var(--amber)"></span> within 5 points below · ' +
      '<span class="sw" style="background:var(--red)"></span> further below. ' +
      'Longest wait amber over T, red over 2 × T. ASA and abandon rate ' + WINDOW_NAMES[windowName] +
      ' (abandons under the short-abandon limit excluded).';
  }

  // -- the stream -----------------------------------------------------------------------------
  function received(data) {
    state.lastMessage = Date.now();
    if (data.server_ms) state.serverOffset = data.server_ms - state.lastMessage;
    if (data.redis_up !== undefined) state.redisUp = data.redis_up;
  }

  function connect() {
    var es = new EventSource("/events");
    es.onopen = function () { state.connected = true; state.everConnected = true; checkStale(); };
    es.onerror = function () { state.connected = false; checkStale(); };
    es.addEventListener("state", function (ev) {
      var data = JSON.parse(ev.data);
      state.connected = true; state.everConnected = true;
      received(data);
      if (!params.get("stale") && data.stale_after_seconds) state.staleAfter = data.stale_after_seconds;
      if (data.heartbeat_seconds) state.heartbeat = data.heartbeat_seconds;
      state.queues = {};
      data.queues.forEach(function (e) { state.queues[e.key] = e; });
      render();
    });
    es.addEventListener("update", function (ev) {
      var data = JSON.parse(ev.data);
      received(data);
      data.queues.forEach(function (e) { state.queues[e.key] = e; });
      render();
    });
    es.addEventListener("heartbeat", function (ev) {
      var data = JSON.parse(ev.data);
      received(data);
      Object.keys(data.confirmed || {}).forEach(function (k) {
        if (state.queues[k]) state.queues[k].confirmed_at_ms = data.confirmed[k];
      });
      checkStale();
    });
  }

  legend();
  render();
  connect();
  setInterval(checkStale, 500);
})();
