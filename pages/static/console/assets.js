// Assets: the stored objects with human-readable sizes, delete, and upload
// by file picker or drag and drop with a progress bar (XMLHttpRequest, since
// fetch() reports no upload progress).
"use strict";
(function () {
  var api = window.portico.api;
  var problem = window.portico.problem;
  var cell = window.portico.cell;
  var $ = function (id) { return document.getElementById(id); };

  function encodePath(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }

  // 1536 -> "1.5 KiB"; exact bytes stay in the cell's title.
  function humanSize(bytes) {
    var units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? bytes + " bytes" : value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
  }

  var notices = window.portico.notices("assets");
  var say = notices.say;
  var fail = notices.fail;

  async function load() {
    var reply = await api("GET", "/admin/assets?prefix=");
    if (!reply.ok) {
      fail("Could not list the assets: " + problem(reply));
      return;
    }
    var body = $("assets").tBodies[0];
    body.textContent = "";
    (reply.data.objects || []).forEach(function (object) {
      var row = window.portico.headedRow("path", object.path);
      var size = cell(row, humanSize(object.size), "size");
      size.title = object.size + " bytes";
      size.dataset.bytes = String(object.size);
      cell(row, object.content_type || "", "type");
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", "Delete " + object.path);
      remove.addEventListener("click", async function () {
        var gone = await api("DELETE", "/admin/assets/" + encodePath(object.path));
        if (gone.ok) say("Deleted " + object.path + ".");
        else fail("Could not delete " + object.path + ": " + problem(gone));
        await load();
      });
      cell(row, "").appendChild(remove);
      body.appendChild(row);
    });
    $("assets").setAttribute("aria-busy", "false");
  }

  // PUT with progress; resolves to {status, ok, data} like portico.api.
  function put(path, file, onProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", "/admin/assets/" + encodePath(path));
      xhr.withCredentials = true;
      xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
      xhr.setRequestHeader("accept", "application/json, application/problem+json");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      xhr.addEventListener("load", function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status === 401) window.portico.toLogin();
        resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, data: data });
      });
      xhr.addEventListener("error", function () {
        resolve({ status: 0, ok: false, data: { detail: "the upload did not reach the server" } });
      });
      xhr.send(file);
    });
  }

  async function upload(file, path) {
    path = path.replace(/^\/+/, "");
    var bar = $("upload-progress");
    bar.hidden = false;
    bar.value = 0;
    bar.max = file.size || 1;
    $("upload-progress-label").textContent = "Uploading " + path + "…";
    var reply = await put(path, file, function (loaded, total) {
      bar.max = total;
      bar.value = loaded;
      $("upload-progress-label").textContent = "Uploading " + path + ": " + humanSize(loaded) + " of " + humanSize(total);
    });
    bar.hidden = true;
    $("upload-progress-label").textContent = "";
    if (reply.ok) {
      say("Uploaded " + reply.data.path + " (" + humanSize(reply.data.size) + ").");
      await load();
    } else {
      fail("Could not upload " + path + ": " + problem(reply));
    }
    return reply;
  }

  $("upload-file").addEventListener("change", function () {
    var file = $("upload-file").files[0];
    if (file && !$("upload-path").value) $("upload-path").value = "site/" + file.name;
  });

  $("upload").addEventListener("submit", async function (event) {
    event.preventDefault();
    var file = $("upload-file").files[0];
    var path = $("upload-path").value;
    if (!file || !path) return;
    var reply = await upload(file, path);
    if (reply.ok) $("upload").reset();
  });

  // Dropped files go under the prefix typed in the path field's folder
  // (`site/` when empty), one after another.
  var zone = $("drop-zone");
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", async function (event) {
    event.preventDefault();
    var files = Array.prototype.slice.call(event.dataTransfer ? event.dataTransfer.files : []);
    var typed = $("upload-path").value.replace(/^\/+/, "");
    var folder = typed ? typed.slice(0, typed.lastIndexOf("/") + 1) : "site/";
    for (var i = 0; i < files.length; i++) {
      await upload(files[i], folder + files[i].name);
    }
  });

  window.porticoConsole = window.porticoConsole || {};
  window.porticoConsole.assets = { load: load, humanSize: humanSize };
})();
