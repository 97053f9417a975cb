// The fleet page of `berth watch`: polls status.json and draws it.
// Read-only, no dependencies. The filter lives in the URL fragment
// (#q=text&c=Blocked,Waiting) so a view can be linked and tested.
"use strict";
(function () {
  var POLL_MS = 2000;
  var CONDITIONS = ["Blocked", "Waiting", "Moving", "Pending", "Unmanaged", "InSync"];
  // Lower sorts first: what needs a person comes first.
  var RANK = { Blocked: 0, Waiting: 1, Moving: 2, Pending: 3, Unmanaged: 4, InSync: 5 };
  var ATTENTION = { Blocked: true, Waiting: true };
  // Long lists start short and grow on demand ("show more"): the page
  // stays quick at 20,000 VMs, and the counts at the top say how many
  // there are in all.
  var ROWS = 50, MORE_ROWS = 200;

  var state = {
    data: null, etag: null, skew: 0, fetchedAt: 0, error: null,
    hosts: null, cards: 60, attention: [], hostsDown: [], moves: [],
    rows: { attention: ROWS, moves: ROWS }
  };
  var filter = { q: "", c: {} };
  var $ = function (id) { return document.getElementById(id); };

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function gib(mib) {
    var g = (mib || 0) / 1024;
    return (g >= 100 ? g.toFixed(0) : g.toFixed(1)).replace(/\.0$/, "") + " GiB";
  }
  function dur(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return sec + "s";
    var m = Math.floor(sec / 60), s = sec % 60;
    if (m < 60) return m + "m" + (s ? s + "s" : "");
    var h = Math.floor(m / 60);
    m = m % 60;
    return h + "h" + (m ? m + "m" : "");
  }
  function now() { return Date.now() + state.skew; }
  function ago(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "";
    var d = (now() - t) / 1000;
    return d < 2 ? "just now" : dur(d) + " ago";
  }
  function clock(iso) {
    var t = new Date(Date.parse(iso));
    return isNaN(t) ? "" : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // ---- filter <-> URL fragment ----
  function readHash() {
    var h = location.hash.replace(/^#/, "");
    var p = {};
    h.split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) {
        try { p[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " ")); } catch (e) { /* ignore */ }
      }
    });
    filter.q = (p.q || "").trim().toLowerCase();
    filter.c = {};
    (p.c || "").split(",").forEach(function (c) { if (RANK.hasOwnProperty(c)) filter.c[c] = true; });
    var input = $("q");
    if (input.value.trim().toLowerCase() !== filter.q) input.value = p.q || "";
  }
  function writeHash() {
    var parts = [];
    if (filter.q) parts.push("q=" + encodeURIComponent(filter.q));
    var cs = Object.keys(filter.c);
    if (cs.length) parts.push("c=" + cs.join(","));
    var h = parts.length ? "#" + parts.join("&") : location.pathname + location.search;
    history.replaceState(null, "", h);
  }
  function anyCond() { return Object.keys(filter.c).length > 0; }
  function vmMatches(name, vm) {
    if (anyCond() && !filter.c[vm.condition]) return false;
    if (!filter.q) return true;
    return name.toLowerCase().indexOf(filter.q) >= 0 ||
      (vm.host || "").toLowerCase().indexOf(filter.q) >= 0 ||
      (vm.reason || "").toLowerCase().indexOf(filter.q) >= 0;
  }

  // ---- drawing ----
  function meter(used, total, label, cls) {
    var pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
    var level = pct >= 90 ? "hi" : pct >= 75 ? "mid" : "lo";
    return '<div class="meter ' + (cls || "") + '" title="' + esc(label) + '">' +
      '<div class="fill ' + level + '" style="width:' + pct.toFixed(1) + '%"></div>' +
      '<span>' + esc(label) + "</span></div>";
  }
  function chip(cond, n, on) {
    return '<button type="button" class="chip c-' + cond + (on ? " on" : "") + (n ? "" : " zero") + '" data-cond="' + cond +
      '" aria-pressed="' + (on ? "true" : "false") + '"><b>' + n + "</b> " + cond + "</button>";
  }

  function drawHeader(d) {
    var bits = [];
    if (d.lastPassAt) bits.push('last pass <time data-ago="' + esc(d.lastPassAt) + '" title="' + esc(d.lastPassAt) + '">' + ago(d.lastPassAt) + "</time>");
    bits.push('updated <time data-ago="' + esc(d.updatedAt) + '" title="' + esc(d.updatedAt) + '">' + ago(d.updatedAt) + "</time>");
    if (d.revision) bits.push('revision <code title="' + esc(d.revision) + '">' + esc(String(d.revision).slice(0, 12)) + "</code>");
    $("meta").innerHTML = bits.join(" · ");

    var b = [];
    if (d.specError) b.push('<div class="banner bad"><b>Spec error</b> (the last valid spec stays in force)<pre>' + esc(d.specError) + "</pre></div>");
    if (d.providerError) b.push('<div class="banner bad"><b>Provider error</b><pre>' + esc(d.providerError) + "</pre></div>");
    if (d.attemptedRevision && d.attemptedRevision !== d.revision)
      b.push('<div class="banner warn"><b>Newest commit not in force:</b> <code>' + esc(String(d.attemptedRevision).slice(0, 12)) +
        "</code> was seen; <code>" + esc(String(d.revision || "none").slice(0, 12)) + "</code> is in force.</div>");
    if (d.suspended) b.push('<div class="banner warn"><b>Suspended:</b> policy.suspend is on; berth observes and reports, and changes nothing.</div>');
    $("banners").innerHTML = b.join("");
  }

  function render() {
    var d = state.data;
    if (!d) return;
    var t0 = performance.now();
    drawHeader(d);
    var vms = d.vms || {};
    var names = Object.keys(vms);
    var counts = {};
    CONDITIONS.forEach(function (c) { counts[c] = 0; });
    var byHost = {};
    var hostNames = Object.keys(d.hosts || {});
    hostNames.forEach(function (h) { byHost[h] = []; });
    var shown = 0;
    var attention = [];
    for (var i = 0; i < names.length; i++) {
      var n = names[i], vm = vms[n];
      counts[vm.condition] = (counts[vm.condition] || 0) + 1;
      var h = vm.host || "(not observed)";
      (byHost[h] || (byHost[h] = [])).push(n);
      if (vmMatches(n, vm)) {
        shown++;
        if (ATTENTION[vm.condition]) attention.push(n);
      }
    }

    // Counts per condition, clickable.
    var c = ['<button type="button" class="chip all' + (anyCond() ? "" : " on") + '" data-cond=""><b>' + names.length + "</b> VMs</button>"];
    CONDITIONS.forEach(function (k) { c.push(chip(k, counts[k] || 0, !!filter.c[k])); });
    c.push('<span class="hostcount">' + hostNames.length + " hosts</span>");
    if (filter.q || anyCond()) c.push('<span class="shown">' + shown + " shown</span>");
    $("counts").innerHTML = c.join("");

    // Needs attention: blocked and waiting, with why.
    attention.sort(function (a, b) { return RANK[vms[a].condition] - RANK[vms[b].condition] || (a < b ? -1 : 1); });
    state.attention = attention;
    state.hostsDown = hostNames.filter(function (h) { return d.hosts[h].reachable === false; });
    drawAttention();

    // Moves in flight.
    state.moves = (d.moves || []).filter(function (m) {
      var vm = vms[m.vm] || { condition: "Moving", host: m.from, reason: "" };
      if (anyCond() && !filter.c[vm.condition]) return false;
      if (!filter.q) return true;
      return [m.vm, m.from, m.to].some(function (s) { return String(s).toLowerCase().indexOf(filter.q) >= 0; });
    });
    drawMoves();

    // Hosts: those with something to look at first.
    var list = Object.keys(byHost).map(function (h) {
      var members = byHost[h];
      var hostHit = filter.q && h.toLowerCase().indexOf(filter.q) >= 0;
      var visible = members.filter(function (n) {
        var v = vms[n];
        if (anyCond() && !filter.c[v.condition]) return false;
        return hostHit || vmMatches(n, v);
      });
      var best = 9;
      members.forEach(function (n) { best = Math.min(best, RANK[vms[n].condition]); });
      var info = (d.hosts || {})[h];
      if (info && info.reachable === false) best = -1;
      return { name: h, members: members, visible: visible, rank: best, hit: hostHit };
    }).filter(function (x) {
      if (x.visible.length) return true;
      return !anyCond() && (!filter.q || x.hit);
    });
    list.sort(function (x, y) { return Math.min(x.rank, 4) - Math.min(y.rank, 4) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0); });
    state.hosts = { list: list, total: Object.keys(byHost).length };
    drawHosts();
    tick();
    void document.body.offsetHeight; // style and layout count in the measure
    var ms = performance.now() - t0;
    document.body.setAttribute("data-render-ms", ms.toFixed(1));
    document.body.setAttribute("data-state", "ready");
  }

  function moreRows(kind, left) {
    return '<p class="more">' + left + ' more: <button type="button" data-more="' + kind + '">show ' +
      Math.min(left, MORE_ROWS) + " more</button> or narrow the filter</p>";
  }

  function drawAttention() {
    var vms = state.data.vms || {}, attention = state.attention, down = state.hostsDown;
    var a = [];
    if (attention.length || down.length) {
      a.push("<h2>Needs attention <small>" + (attention.length + down.length) + "</small></h2>");
      if (down.length) a.push('<p class="down">Unreachable: ' + down.map(esc).join(", ") + "</p>");
      if (attention.length) {
        var n = Math.min(attention.length, state.rows.attention);
        a.push('<table class="list attn"><thead><tr><th>VM</th><th>condition</th><th>host</th><th>why</th></tr></thead><tbody>');
        for (var i = 0; i < n; i++) {
          var name = attention[i], v = vms[name];
          a.push('<tr class="vmrow" data-vm="' + esc(name) + '"><td class="name">' + esc(name) + '</td><td><span class="cond c-' + v.condition + '">' +
            v.condition + "</span></td><td>" + esc(v.host || "") + '</td><td class="reason">' + esc(v.reason || "") + "</td></tr>");
        }
        a.push("</tbody></table>");
        if (n < attention.length) a.push(moreRows("attention", attention.length - n));
      }
    }
    $("attention").innerHTML = a.join("");
  }

  function drawMoves() {
    var moves = state.moves, m = [];
    if (moves.length) {
      var n = Math.min(moves.length, state.rows.moves);
      m.push("<h2>Moves in flight <small>" + moves.length + "</small></h2>");
      m.push('<table class="list moves"><thead><tr><th>VM</th><th>from → to</th><th>method</th><th>progress</th><th>expected end</th><th>attempt</th></tr></thead><tbody>');
      for (var i = 0; i < n; i++) {
        var mv = moves[i], est = mv.estimatedSeconds;
        var prog = est ? '<div class="progress" data-start="' + esc(mv.startedAt) + '" data-est="' + est +
          '"><div class="track"><div class="fill"></div></div><span></span></div>' : '<span class="muted">started elsewhere; berth waits</span>';
        var end = mv.expectedEnd ? '<time data-until="' + esc(mv.expectedEnd) + '" title="' + esc(mv.expectedEnd) + '">' + clock(mv.expectedEnd) + "</time>" : "";
        m.push('<tr class="move" data-vm="' + esc(mv.vm) + '"><td class="name">' + esc(mv.vm) + "</td><td>" + esc(mv.from) + " → " + esc(mv.to) +
          "</td><td>" + esc(mv.method) + (mv.memoryMiB ? " · " + gib(mv.memoryMiB) : "") + "</td><td>" + prog + "</td><td>" + end +
          "</td><td>" + (mv.attempt || "") + "</td></tr>");
      }
      m.push("</tbody></table>");
      if (n < moves.length) m.push(moreRows("moves", moves.length - n));
    }
    $("moves").innerHTML = m.join("");
  }

  // Host cards come in pages: the first ones (those needing attention sort
  // first) at once, more as the end of the list scrolls into view.
  var CARDS = 60;
  var more = null;
  function drawHosts() {
    var d = state.data, vms = d.vms || {}, h = state.hosts, list = h.list;
    var n = Math.min(list.length, state.cards);
    var out = ["<h2>Hosts <small>" + list.length + (list.length !== h.total ? " of " + h.total : "") + '</small></h2><div class="grid">'];
    for (var i = 0; i < n; i++) out.push(hostCard(list[i], d, vms));
    out.push("</div>");
    if (n < list.length) {
      out.push('<p id="morehosts" class="more">' + (list.length - n) + ' more hosts below: <button type="button" id="allhosts">show all</button></p>');
    }
    if (!list.length) out.push('<p class="muted">No host or VM matches the filter.</p>');
    $("hosts").innerHTML = out.join("");
    var sentinel = $("morehosts");
    if (more) more.disconnect();
    if (sentinel && window.IntersectionObserver) {
      more = new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) {
          state.cards += CARDS * 2;
          drawHosts();
          tick();
        }
      }, { rootMargin: "600px" });
      more.observe(sentinel);
    }
    var all = $("allhosts");
    if (all) all.addEventListener("click", function () { state.cards = Infinity; drawHosts(); tick(); });
  }

  function hostCard(x, d, vms) {
    var info = (d.hosts || {})[x.name];
    var flags = [];
    if (info && info.reachable === false) flags.push('<span class="flag bad">unreachable</span>');
    if (info && info.maintenance) flags.push('<span class="flag warn">maintenance</span>');
    var h = ['<article class="host' + (info && info.reachable === false ? " down" : "") + '" data-host="' + esc(x.name) + '"><h3>' + esc(x.name) + " " + flags.join(" ") +
      '<small>' + x.members.length + " VM" + (x.members.length === 1 ? "" : "s") + "</small></h3>"];
    if (info) {
      h.push(meter(info.memoryUsedMiB, info.memoryMiB, "memory " + gib(info.memoryUsedMiB) + " / " + gib(info.memoryMiB)));
      (info.volumes || []).forEach(function (v) {
        var total = (v.vmMiB || 0) + (v.freeMiB || 0);
        h.push(meter(v.vmMiB || 0, total, v.path + " " + gib(v.freeMiB) + " free", "vol"));
      });
      var slots = [];
      var cap = Math.min(info.migrationSlots || 0, 16);
      for (var i = 0; i < cap; i++) slots.push('<i class="' + (i < info.migrationsInUse ? "used" : "") + '"></i>');
      h.push('<div class="slots" title="live migrations in or out now, of the allowed ' + info.migrationSlots + '">migrations ' +
        info.migrationsInUse + "/" + info.migrationSlots + " " + slots.join("") + "</div>");
    }
    var sorted = x.visible.slice().sort(function (a, b) { return RANK[vms[a].condition] - RANK[vms[b].condition] || (a < b ? -1 : 1); });
    var quiet = [], loud = [];
    sorted.forEach(function (n) {
      var v = vms[n];
      if (v.condition === "InSync" || v.condition === "Unmanaged") {
        quiet.push('<span class="vm c-' + v.condition + '" data-vm="' + esc(n) + '" title="' + esc(n + ": " + v.condition) + '">' + esc(n) + "</span>");
      } else {
        loud.push('<li class="vm c-' + v.condition + '" data-vm="' + esc(n) + '"><span class="cond c-' + v.condition + '">' + v.condition +
          '</span> <b>' + esc(n) + '</b> <span class="reason">' + esc(v.reason || "") + "</span></li>");
      }
    });
    if (loud.length) h.push('<ul class="loud">' + loud.join("") + "</ul>");
    if (quiet.length) h.push('<div class="quiet">' + quiet.join("") + "</div>");
    if (x.visible.length < x.members.length) h.push('<p class="muted">' + (x.members.length - x.visible.length) + " more not matching the filter</p>");
    h.push("</article>");
    return h.join("");
  }

  // Times and progress move on between polls. Only text that changed is
  // written, and progress moves by a transform, so a tick costs no layout
  // of the tables around it.
  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }
  function tick() {
    var t = now();
    var els = document.querySelectorAll("[data-ago]");
    for (var i = 0; i < els.length; i++) setText(els[i], ago(els[i].getAttribute("data-ago")));
    els = document.querySelectorAll("[data-until]");
    for (i = 0; i < els.length; i++) {
      var end = Date.parse(els[i].getAttribute("data-until"));
      var left = (end - t) / 1000;
      setText(els[i], clock(els[i].getAttribute("data-until")) + (left >= 0 ? " (in " + dur(left) + ")" : " (overdue " + dur(-left) + ")"));
    }
    els = document.querySelectorAll(".progress[data-start]");
    for (i = 0; i < els.length; i++) {
      var start = Date.parse(els[i].getAttribute("data-start"));
      var est = parseFloat(els[i].getAttribute("data-est")) || 1;
      var frac = Math.max(0, Math.min(0.99, (t - start) / 1000 / est));
      var pct = String(Math.floor(frac * 100));
      els[i].querySelector(".fill").style.transform = "scaleX(" + frac.toFixed(3) + ")";
      setText(els[i].querySelector("span"), pct + "% · " + dur((t - start) / 1000) + " of ~" + dur(est));
      if (els[i].getAttribute("data-pct") !== pct) els[i].setAttribute("data-pct", pct);
    }
    var conn = $("conn");
    if (state.error) {
      conn.className = "conn bad";
      conn.textContent = "cannot reach berth: " + state.error + (state.data ? " (showing data from " + clock(new Date(state.fetchedAt).toISOString()) + ")" : "");
    } else if (state.fetchedAt) {
      conn.className = "conn ok";
      conn.textContent = "live";
    }
  }

  function poll() {
    var headers = {};
    if (state.etag) headers["If-None-Match"] = state.etag;
    fetch("status.json", { cache: "no-store", headers: headers, credentials: "same-origin" })
      .then(function (r) {
        var date = Date.parse(r.headers.get("Date") || "");
        if (!isNaN(date)) state.skew = date - Date.now();
        if (r.status === 304) return null;
        if (!r.ok) throw new Error("HTTP " + r.status);
        state.etag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (data) {
        state.error = null;
        state.fetchedAt = Date.now();
        if (data) {
          state.data = data;
          render();
        } else {
          tick();
        }
      })
      .catch(function (e) {
        state.error = e && e.message ? e.message : String(e);
        if (!state.data) document.body.setAttribute("data-state", "error");
        tick();
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  // ---- events ----
  function resetPages() {
    state.cards = CARDS;
    state.rows = { attention: ROWS, moves: ROWS };
  }
  document.querySelector("main").addEventListener("click", function (e) {
    var b = e.target.closest("button[data-more]");
    if (!b) return;
    var kind = b.getAttribute("data-more");
    state.rows[kind] += MORE_ROWS;
    if (kind === "attention") drawAttention(); else drawMoves();
    tick();
  });
  var typing = null;
  $("q").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () {
      filter.q = $("q").value.trim().toLowerCase();
      resetPages();
      writeHash();
      render();
    }, 120);
  });
  $("counts").addEventListener("click", function (e) {
    var b = e.target.closest("button[data-cond]");
    if (!b) return;
    var c = b.getAttribute("data-cond");
    if (!c) filter.c = {};
    else if (filter.c[c]) delete filter.c[c];
    else filter.c[c] = true;
    resetPages();
    writeHash();
    render();
  });
  window.addEventListener("hashchange", function () { readHash(); resetPages(); render(); });
  readHash();
  setInterval(tick, 1000);
  poll();
})();
