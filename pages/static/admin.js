// /admin/: the flag definitions (toggles and the whole JSON) and the assets.
"use strict";
(function () {
  var api = window.portico.api;
  var problem = window.portico.problem;
  var cell = window.portico.cell;
  var $ = function (id) { return document.getElementById(id); };

  function encodePath(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }

  // ---- Flags ----
  var definitions = { flags: {} };

  async function loadFlags() {
    var reply = await api("GET", "/admin/flags");
    if (!reply.ok) {
      $("flags-error").textContent = "Could not load the flags: " + problem(reply);
      return;
    }
    definitions = reply.data || { flags: {} };
    $("flags-json").value = JSON.stringify(definitions, null, 2);
    var body = $("flag-list").tBodies[0];
    body.textContent = "";
    Object.keys(definitions.flags || {}).sort().forEach(function (key) {
      var flag = definitions.flags[key];
      var enabled = flag.state === "ENABLED";
      var row = document.createElement("tr");
      row.dataset.flag = key;
      var name = document.createElement("th");
      name.scope = "row";
      name.textContent = key;
      row.appendChild(name);
      cell(row, String(flag.defaultVariant));
      var td = cell(row, "");
      var toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "toggle";
      toggle.setAttribute("role", "switch");
      toggle.setAttribute("aria-checked", String(enabled));
      toggle.setAttribute("aria-label", key);
      toggle.textContent = enabled ? "Enabled" : "Disabled";
      toggle.addEventListener("click", function () { flip(key, toggle); });
      td.appendChild(toggle);
      body.appendChild(row);
    });
    $("flag-list").setAttribute("aria-busy", "false");
  }

  async function flip(key, toggle) {
    var flag = Object.assign({}, definitions.flags[key]);
    flag.state = flag.state === "ENABLED" ? "DISABLED" : "ENABLED";
    toggle.disabled = true;
    $("flags-error").textContent = "";
    var reply = await api("PATCH", "/admin/flags/" + encodeURIComponent(key), JSON.stringify(flag));
    if (reply.ok) {
      $("flags-status").textContent = key + " is now " + flag.state.toLowerCase() + ".";
    } else {
      $("flags-error").textContent = "Could not change " + key + ": " + problem(reply);
    }
    await loadFlags();
  }

  $("flags-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("flags-error").textContent = "";
    $("flags-status").textContent = "";
    $("flags-json").removeAttribute("aria-invalid");
    var reply = await api("PUT", "/admin/flags", $("flags-json").value);
    if (reply.ok) {
      $("flags-status").textContent = "Saved.";
      await loadFlags();
    } else {
      $("flags-json").setAttribute("aria-invalid", "true");
      $("flags-error").textContent = problem(reply);
    }
  });

  // ---- Assets ----
  async function loadAssets() {
    var reply = await api("GET", "/admin/assets?prefix=");
    if (!reply.ok) {
      $("assets-error").textContent = "Could not list the assets: " + problem(reply);
      return;
    }
    var body = $("assets").tBodies[0];
    body.textContent = "";
    (reply.data.objects || []).forEach(function (object) {
      var row = document.createElement("tr");
      row.dataset.path = object.path;
      var name = document.createElement("th");
      name.scope = "row";
      name.textContent = object.path;
      row.appendChild(name);
      cell(row, String(object.size), "size");
      cell(row, object.content_type || "", "type");
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", "Delete " + object.path);
      remove.addEventListener("click", async function () {
        $("assets-error").textContent = "";
        var gone = await api("DELETE", "/admin/assets/" + encodePath(object.path));
        if (gone.ok) {
          $("assets-status").textContent = "Deleted " + object.path + ".";
        } else {
          $("assets-error").textContent = "Could not delete " + object.path + ": " + problem(gone);
        }
        await loadAssets();
      });
      cell(row, "").appendChild(remove);
      body.appendChild(row);
    });
    $("assets").setAttribute("aria-busy", "false");
  }

  $("upload-file").addEventListener("change", function () {
    var file = $("upload-file").files[0];
    if (file && !$("upload-path").value) $("upload-path").value = "site/" + file.name;
  });

  $("upload").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("assets-error").textContent = "";
    $("assets-status").textContent = "";
    var file = $("upload-file").files[0];
    var path = $("upload-path").value.replace(/^\/+/, "");
    if (!file || !path) return;
    var reply = await api("PUT", "/admin/assets/" + encodePath(path), file,
      file.type || "application/octet-stream");
    if (reply.ok) {
      $("assets-status").textContent = "Uploaded " + reply.data.path + " (" + reply.data.size + " bytes).";
      $("upload").reset();
      await loadAssets();
    } else {
      $("assets-error").textContent = "Could not upload " + path + ": " + problem(reply);
    }
  });

  Promise.all([loadFlags(), loadAssets()]).then(function () {
    document.body.dataset.state = "ready";
  }, function (err) {
    $("flags-error").textContent = "Could not load the page: " + err.message;
  });
})();
