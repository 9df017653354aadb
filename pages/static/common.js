// Shared by the signed-in pages: same-origin JSON calls with the session
// cookie, the way back to the sign-in page, and the Log out button.
"use strict";
window.portico = (function () {
  function toLogin() {
    var next = window.location.pathname + window.location.search;
    window.location.assign("/login?next=" + encodeURIComponent(next));
  }

  // Resolves to {status, ok, data}; data is the parsed JSON body or null.
  // A 401 sends the visitor to the sign-in page.
  async function api(method, url, body, contentType) {
    var init = {
      method: method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json, application/problem+json" }
    };
    if (body !== undefined) {
      init.body = body;
      init.headers["content-type"] = contentType || "application/json";
    }
    var response = await fetch(url, init);
    var text = await response.text();
    var data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (response.status === 401) {
      toLogin();
    }
    return { status: response.status, ok: response.ok, data: data };
  }

  // The problem's `detail` (RFC 9457), else the status.
  function problem(reply) {
    if (reply.data && typeof reply.data.detail === "string" && reply.data.detail) {
      return reply.data.detail;
    }
    return "The server answered " + reply.status + ".";
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  var logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async function () {
      logout.disabled = true;
      try {
        await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
      } finally {
        window.location.assign("/login");
      }
    });
  }

  // A section's status line (`<prefix>-status`) and alert (`<prefix>-error`):
  // saying one empties the other, so only the latest answer shows.
  function notices(prefix) {
    var status = document.getElementById(prefix + "-status");
    var alert = document.getElementById(prefix + "-error");
    return {
      say: function (text) { alert.textContent = ""; status.textContent = text; },
      fail: function (text) { status.textContent = ""; alert.textContent = text; }
    };
  }

  // A table row marked `data-<attribute>` = value, whose first cell is the
  // row's header showing the value.
  function headedRow(attribute, value) {
    var row = document.createElement("tr");
    row.dataset[attribute] = value;
    var header = document.createElement("th");
    header.scope = "row";
    header.textContent = value;
    row.appendChild(header);
    return row;
  }

  return {
    api: api, problem: problem, cell: cell, headedRow: headedRow, toLogin: toLogin, notices: notices
  };
})();
