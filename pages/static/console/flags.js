// Flags: a toggle per flag, a form for one flag (state, variants, default,
// fractional weights), the whole set as JSON, and a preview of what a
// targeting key and context get (OFREP). Validation is the server's: its
// problem `detail` names the flag and field.
"use strict";
(function () {
  var api = window.portico.api;
  var problem = window.portico.problem;
  var cell = window.portico.cell;
  var $ = function (id) { return document.getElementById(id); };

  var definitions = { flags: {} };
  var NEW = "";

  var notices = window.portico.notices("flags");
  var say = notices.say;
  var fail = notices.fail;

  async function load() {
    var reply = await api("GET", "/admin/flags");
    if (!reply.ok) {
      fail("Could not load the flags: " + problem(reply));
      return;
    }
    definitions = reply.data || { flags: {} };
    definitions.flags = definitions.flags || {};
    $("flags-json").value = JSON.stringify(definitions, null, 2);
    renderToggles();
    renderPickers();
    $("flag-list").setAttribute("aria-busy", "false");
  }

  function renderToggles() {
    var body = $("flag-list").tBodies[0];
    body.textContent = "";
    Object.keys(definitions.flags).sort().forEach(function (key) {
      var flag = definitions.flags[key];
      var enabled = flag.state === "ENABLED";
      var row = window.portico.headedRow("flag", key);
      cell(row, String(flag.defaultVariant));
      var toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "toggle";
      toggle.setAttribute("role", "switch");
      toggle.setAttribute("aria-checked", String(enabled));
      toggle.setAttribute("aria-label", key);
      toggle.textContent = enabled ? "Enabled" : "Disabled";
      toggle.addEventListener("click", function () { flip(key, toggle); });
      cell(row, "").appendChild(toggle);
      body.appendChild(row);
    });
  }

  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  function renderPickers() {
    var keys = Object.keys(definitions.flags).sort();
    [["flag-pick", true], ["preview-flag", false]].forEach(function (spec) {
      var select = $(spec[0]);
      var chosen = select.value;
      select.textContent = "";
      if (spec[1]) option(select, NEW, "New flag…");
      keys.forEach(function (key) { option(select, key, key); });
      if (keys.indexOf(chosen) >= 0 || (spec[1] && chosen === NEW)) select.value = chosen;
    });
    fillForm();
  }

  async function flip(key, toggle) {
    var flag = Object.assign({}, definitions.flags[key]);
    flag.state = flag.state === "ENABLED" ? "DISABLED" : "ENABLED";
    toggle.disabled = true;
    var reply = await api("PATCH", "/admin/flags/" + encodeURIComponent(key), JSON.stringify(flag));
    if (reply.ok) {
      say(key + " is now " + flag.state.toLowerCase() + ".");
    } else {
      fail("Could not change " + key + ": " + problem(reply));
    }
    await load();
  }

  // ---- One flag's form ----

  // The weights of a targeting that is exactly a fractional split, by
  // variant; null for any other targeting.
  function fractionalWeights(targeting) {
    if (!targeting || typeof targeting !== "object") return null;
    var keys = Object.keys(targeting);
    if (keys.length !== 1 || keys[0] !== "fractional" || !Array.isArray(targeting.fractional)) return null;
    var weights = {};
    var ok = true;
    targeting.fractional.forEach(function (entry) {
      if (Array.isArray(entry) && typeof entry[0] === "string") {
        weights[entry[0]] = entry.length > 1 ? entry[1] : 1;
      } else if (!(entry && typeof entry === "object" && !Array.isArray(entry))) {
        ok = false; // neither a bucket nor the bucketing-key expression
      }
    });
    return ok ? weights : null;
  }

  function parseVariants() {
    try {
      var variants = JSON.parse($("flag-variants").value || "{}");
      if (variants && typeof variants === "object" && !Array.isArray(variants)) return variants;
    } catch (e) { /* reported below */ }
    return null;
  }

  function renderVariantFields(weights) {
    var variants = parseVariants();
    var select = $("flag-default");
    var chosen = select.value;
    select.textContent = "";
    var holder = $("flag-weights-list");
    var typed = {};
    holder.querySelectorAll("input").forEach(function (input) { typed[input.dataset.variant] = input.value; });
    holder.textContent = "";
    if (!variants) {
      $("flag-variants").setAttribute("aria-invalid", "true");
      $("flag-variants-hint").textContent = "Variants must be a JSON object, e.g. {\"on\": true, \"off\": false}.";
      return;
    }
    $("flag-variants").removeAttribute("aria-invalid");
    $("flag-variants-hint").textContent = "";
    Object.keys(variants).forEach(function (name, i) {
      option(select, name, name);
      var id = "flag-weight-" + i;
      var label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = "Weight of " + name;
      var input = document.createElement("input");
      input.id = id;
      input.type = "number";
      input.min = "0";
      input.step = "1";
      input.inputMode = "numeric";
      input.dataset.variant = name;
      var initial = weights ? weights[name] : typed[name];
      input.value = initial === undefined || initial === null ? "" : String(initial);
      var row = document.createElement("div");
      row.className = "weight";
      row.appendChild(label);
      row.appendChild(input);
      holder.appendChild(row);
    });
    if (Object.prototype.hasOwnProperty.call(variants, chosen)) select.value = chosen;
  }

  function fillForm() {
    var key = $("flag-pick").value;
    var flag = key === NEW ? null : definitions.flags[key];
    $("flag-key").value = key === NEW ? "" : key;
    $("flag-key").readOnly = key !== NEW;
    $("flag-state").value = flag ? flag.state : "ENABLED";
    $("flag-variants").value = JSON.stringify(flag ? flag.variants : { on: true, off: false }, null, 2);
    var weights = flag ? fractionalWeights(flag.targeting) : null;
    renderVariantFields(weights || {});
    $("flag-default").value = flag ? flag.defaultVariant : "off";
    $("flag-remove").hidden = !flag;
    var custom = flag && flag.targeting && !weights;
    $("flag-weights-note").textContent = custom
      ? "This flag has custom targeting (see the JSON below); it is kept unless you enter weights here."
      : "Leave every weight empty for no split: everyone gets the default variant.";
  }

  function formFlag() {
    var key = $("flag-key").value.trim();
    var existing = definitions.flags[key] || {};
    var variants = parseVariants();
    var flag = Object.assign({}, existing, {
      state: $("flag-state").value,
      variants: variants,
      defaultVariant: $("flag-default").value
    });
    var split = [];
    $("flag-weights-list").querySelectorAll("input").forEach(function (input) {
      var weight = input.value === "" ? 0 : Number(input.value);
      if (weight > 0) split.push([input.dataset.variant, weight]);
    });
    if (split.length) {
      flag.targeting = { fractional: split };
    } else if (fractionalWeights(existing.targeting)) {
      delete flag.targeting; // the split was cleared
    }
    return { key: key, flag: flag, variants: variants };
  }

  $("flag-pick").addEventListener("change", fillForm);
  $("flag-variants").addEventListener("input", function () { renderVariantFields(null); });

  $("flag-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var form = formFlag();
    $("flag-key").removeAttribute("aria-invalid");
    if (!form.key) {
      $("flag-key").setAttribute("aria-invalid", "true");
      fail("A flag needs a key.");
      $("flag-key").focus();
      return;
    }
    if (!form.variants) {
      fail("Variants must be a JSON object.");
      $("flag-variants").focus();
      return;
    }
    var reply = await api("PATCH", "/admin/flags/" + encodeURIComponent(form.key), JSON.stringify(form.flag));
    if (reply.ok) {
      say("Saved " + form.key + ".");
      $("flag-pick").value = form.key;
      await load();
      $("flag-pick").value = form.key;
      fillForm();
    } else {
      fail("Could not save " + form.key + ": " + problem(reply));
    }
  });

  $("flag-remove").addEventListener("click", async function () {
    var key = $("flag-key").value;
    if (!window.confirm("Remove the flag " + key + "?")) return;
    var reply = await api("PATCH", "/admin/flags/" + encodeURIComponent(key), "null");
    if (reply.ok) {
      say("Removed " + key + ".");
      $("flag-pick").value = NEW;
      await load();
    } else {
      fail("Could not remove " + key + ": " + problem(reply));
    }
  });

  // ---- The whole set ----

  $("flags-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("flags-json").removeAttribute("aria-invalid");
    var reply = await api("PUT", "/admin/flags", $("flags-json").value);
    if (reply.ok) {
      say("Saved.");
      await load();
    } else {
      $("flags-json").setAttribute("aria-invalid", "true");
      fail(problem(reply));
    }
  });

  // ---- Preview (OFREP) ----

  $("preview-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var out = $("preview-result");
    out.textContent = "";
    $("preview-error").textContent = "";
    var context = {};
    var raw = $("preview-context").value.trim();
    if (raw) {
      try {
        context = JSON.parse(raw);
      } catch (e) {
        context = null;
      }
      if (!context || typeof context !== "object" || Array.isArray(context)) {
        $("preview-context").setAttribute("aria-invalid", "true");
        $("preview-error").textContent = "The context must be a JSON object, e.g. {\"country\": \"NL\"}.";
        return;
      }
    }
    $("preview-context").removeAttribute("aria-invalid");
    context.targetingKey = $("preview-key").value;
    var key = $("preview-flag").value;
    var reply = await api("POST", "/ofrep/v1/evaluate/flags/" + encodeURIComponent(key),
      JSON.stringify({ context: context }));
    var body = reply.data || {};
    if (reply.ok) {
      out.dataset.variant = body.variant === undefined ? "" : String(body.variant);
      out.textContent = key + " for " + JSON.stringify(context.targetingKey) + ": variant " +
        body.variant + ", value " + JSON.stringify(body.value) + " (" + body.reason + ")";
    } else {
      out.dataset.variant = "";
      $("preview-error").textContent = (body.errorCode ? body.errorCode + ": " : "") +
        (body.errorDetails || problem(reply));
    }
  });

  window.porticoConsole = window.porticoConsole || {};
  window.porticoConsole.flags = { load: load };
})();
