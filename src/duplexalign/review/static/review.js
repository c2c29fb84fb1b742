// duplexalign review: playback with a following cursor, click-to-play, zoom, decisions and keys.
// Reads everything from the server-rendered page (data-* attributes); writes through
// POST /api/decisions (JSON, same origin). No inline script: the page's CSP forbids it.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  async function post(body) {
    const r = await fetch("/api/decisions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!r.ok) { const t = await r.text(); alert("not saved: " + t); throw new Error(t); }
    return (await r.json()).decision;
  }

  // ---- playback -------------------------------------------------------------------------
  const model = $("#audio-model"), user = $("#audio-user");
  const timeline = $("#timeline"), cursor = $("#cursor"), scroller = $("#scroller");
  const clock = $("#clock");
  const pps = () => parseFloat(getComputedStyle(timeline).getPropertyValue("--pps"));
  const now = () => (model ? model.currentTime : 0);

  function playFrom(t) {
    if (!model) return;
    model.currentTime = t;
    if (user) user.currentTime = t;
    model.play();
  }
  function togglePlay() {
    if (!model) return;
    if (model.paused) model.play(); else model.pause();
  }
  if (model && user) {
    model.addEventListener("play", () => { user.currentTime = model.currentTime; user.play(); });
    model.addEventListener("pause", () => user.pause());
    model.addEventListener("seeked", () => { user.currentTime = model.currentTime; });
  }
  function tick() {
    if (timeline) {
      const x = now() * pps();
      cursor.style.left = x + "px";
      if (clock) clock.textContent = now().toFixed(2);
      if (model && !model.paused) {
        const v = scroller.scrollLeft, w = scroller.clientWidth;
        if (x < v || x > v + w - 40) scroller.scrollLeft = Math.max(0, x - 60);
      }
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);

  function zoom(f) {
    if (!timeline) return;
    const z = Math.min(800, Math.max(5, pps() * f));
    timeline.style.setProperty("--pps", z);
  }
  if ($("#play")) $("#play").addEventListener("click", togglePlay);
  if ($("#zoom-in")) $("#zoom-in").addEventListener("click", () => zoom(1.5));
  if ($("#zoom-out")) $("#zoom-out").addEventListener("click", () => zoom(1 / 1.5));
  document.addEventListener("click", (e) => {
    const el = e.target.closest(".word, .span, .seek");
    if (!el) return;
    e.preventDefault();
    playFrom(parseFloat(el.dataset.start));
    if (el.dataset.issue) select(issues.findIndex((li) => li.dataset.issue === el.dataset.issue));
  });

  // ---- issues ---------------------------------------------------------------------------
  const issues = $$("li.issue");
  let current = -1;
  function select(i) {
    if (!issues.length) return;
    current = Math.max(0, Math.min(issues.length - 1, i));
    issues.forEach((li, k) => li.classList.toggle("selected", k === current));
    const id = issues[current].dataset.issue;
    $$(".span").forEach((s) => s.classList.toggle("selected", s.dataset.issue === id));
    issues[current].scrollIntoView({ block: "nearest" });
  }
  async function decide(li, verdict) {
    const body = { target: "issue", target_id: li.dataset.issue, verdict: verdict };
    if (verdict === "reject") body.reason = $(".reject-reason", li).value;
    if (verdict === "edit") body.text = $(".edit-text", li).value;
    const d = await post(body);
    li.classList.remove("decided-confirm", "decided-reject", "decided-edit");
    li.classList.add("decided-" + d.verdict);
    $(".status", li).textContent = d.verdict + (d.reason ? ": " + d.reason : "");
    if (d.text) $(".improved-text", li).textContent = d.text;
    $(".editor", li).hidden = true;
  }
  issues.forEach((li, k) => {
    li.addEventListener("click", (e) => { if (!e.target.closest("input,textarea")) select(k); });
    $("[data-verdict=confirm]", li).addEventListener("click", () => decide(li, "confirm"));
    $("[data-verdict=reject]", li).addEventListener("click", () => decide(li, "reject"));
    $("[data-verdict=edit]", li).addEventListener("click", () => openEditor(li));
    $(".save-edit", li).addEventListener("click", () => decide(li, "edit"));
    $(".reject-reason", li).addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); decide(li, "reject"); li.focus(); }
    });
    $(".edit-text", li).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); decide(li, "edit"); }
      if (e.key === "Escape") { $(".editor", li).hidden = true; li.focus(); }
    });
  });
  function openEditor(li) {
    $(".editor", li).hidden = false;
    const ta = $(".edit-text", li);
    ta.focus();
    ta.select();
  }

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
    const li = current >= 0 ? issues[current] : null;
    switch (e.key) {
      case "j": case "ArrowDown": select(current + 1); break;
      case "k": case "ArrowUp": select(current - 1); break;
      case "c": if (li) decide(li, "confirm"); break;
      case "r": if (li) decide(li, "reject"); break;
      case "e": if (li) { e.preventDefault(); openEditor(li); } break;
      case " ": e.preventDefault(); if (li && model && model.paused) playFrom(parseFloat(li.dataset.start)); else togglePlay(); break;
      case "+": case "=": zoom(1.5); break;
      case "-": zoom(1 / 1.5); break;
      case "]": if ($("#next-conv")) location.href = $("#next-conv").href; break;
      case "[": if ($("#prev-conv")) location.href = $("#prev-conv").href; break;
      default: return;
    }
  });
  if (issues.length) select(0);

  // ---- replies the judges missed ----------------------------------------------------------
  $$("li.reply").forEach((li) => {
    $(".flag", li).addEventListener("click", async () => {
      const d = await post({ target: "reply", target_id: li.dataset.reply, verdict: "flag",
                             category: $(".flag-category", li).value });
      $(".status", li).textContent = "flagged " + d.category;
    });
  });

  // ---- pairs: blind A/B -------------------------------------------------------------------
  $$(".pair").forEach((div) => {
    const a = $("audio.a", div), b = $("audio.b", div);
    $(".play-ab", div).addEventListener("click", () => {
      if (!a || !b) return;
      b.pause(); a.currentTime = 0; a.play();
      a.onended = () => { b.currentTime = 0; b.play(); a.onended = null; };
    });
    $$(".prefer", div).forEach((btn) => btn.addEventListener("click", async () => {
      const first = div.dataset.shownFirst, other = first === "chosen" ? "rejected" : "chosen";
      const pref = btn.dataset.pref;
      const verdict = pref === "neither" ? "neither" : "prefer_" + (pref === "a" ? first : other);
      await post({ target: "pair", target_id: div.dataset.pair, verdict: verdict, shown_first: first });
      $(".status", div).textContent = pref === "neither" ? "neither" : "prefer " + pref.toUpperCase();
    }));
  });

  // ---- ratings ----------------------------------------------------------------------------
  const ratings = $("table.ratings");
  $$("tr.rating").forEach((tr) => {
    $(".rate", tr).addEventListener("click", async () => {
      const rating = { at: parseInt(tr.dataset.at, 10) };
      $$("select", tr).forEach((s) => { rating[s.name] = parseInt(s.value, 10); });
      await post({ target: "conversation", target_id: ratings.dataset.conversation,
                   verdict: "rate", rating: rating });
      $(".status", tr).textContent = "saved";
    });
  });
})();
