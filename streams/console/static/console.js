// The queue page: polls the queue every two seconds and redraws its rows when it changed.
// Rows are built with DOM calls and textContent: nothing received is ever parsed as HTML.
"use strict";
(function () {
  const status = document.getElementById("queue-status");
  const body = document.querySelector("#queue tbody");
  if (!status || !body) return;
  let revision = Number(status.dataset.revision);
  let caughtUp = status.dataset.caughtUp === "true";

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function row(r) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = r.href;
    link.textContent = r.account_id;
    const first = document.createElement("td");
    first.appendChild(link);
    const state = document.createElement("span");
    state.className = "state state-" + r.state;
    state.textContent = r.state_words;
    const second = document.createElement("td");
    second.appendChild(state);
    tr.append(first, second, cell(r.reasons), cell(r.charge), cell(r.decided_at, "when"), cell(String(r.version)));
    return tr;
  }

  async function poll() {
    try {
      const answer = await fetch(status.dataset.source, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) {
        status.textContent = "Logged out: reload the page to log in again.";
        return;
      }
      const queue = await answer.json();
      if (queue.revision !== revision || queue.caught_up !== caughtUp) {
        revision = queue.revision;
        caughtUp = queue.caught_up;
        body.replaceChildren(...queue.rows.map(row));
        const reading = caughtUp ? "" : " (" + status.dataset.reading + ")";
        status.textContent = queue.rows.length + " accounts" + reading + ", updated " + new Date().toLocaleTimeString();
      }
    } catch (error) {
      status.textContent = "Not updating (" + error + "); retrying.";
    }
    window.setTimeout(poll, 2000);
  }
  window.setTimeout(poll, 2000);
})();
