// Users and sessions: the list with roles, create, change roles, end a
// user's sessions, delete. Each action answers in the status line or, on
// failure, with the problem's `detail` in the alert.
"use strict";
(function () {
  var api = window.portico.api;
  var problem = window.portico.problem;
  var cell = window.portico.cell;
  var $ = function (id) { return document.getElementById(id); };

  var notices = window.portico.notices("users");
  var say = notices.say;
  var fail = notices.fail;

  function roleList(text) {
    return text.split(/[\s,]+/).filter(Boolean);
  }

  function userUrl(name) {
    return "/admin/users/" + encodeURIComponent(name);
  }

  function button(text, label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  async function load() {
    var reply = await api("GET", "/admin/users");
    if (!reply.ok) {
      fail("Could not list the users: " + problem(reply));
      return;
    }
    var body = $("users").tBodies[0];
    body.textContent = "";
    (reply.data.users || []).forEach(function (user, i) {
      var row = window.portico.headedRow("user", user.name);

      var roles = cell(row, "", "roles");
      var input = document.createElement("input");
      input.id = "roles-" + i;
      input.value = (user.roles || []).join(", ");
      input.setAttribute("aria-label", "Roles of " + user.name);
      input.autocapitalize = "none";
      input.spellcheck = false;
      roles.appendChild(input);

      cell(row, user.created ? new Date(user.created * 1000).toISOString().slice(0, 10) : "", "created");

      var actions = cell(row, "", "actions");
      actions.appendChild(button("Save roles", "Save roles of " + user.name, async function () {
        var r = await api("PATCH", userUrl(user.name), JSON.stringify({ roles: roleList(input.value) }));
        if (r.ok) say("Roles of " + user.name + " saved; their earlier sessions have ended.");
        else fail("Could not change the roles of " + user.name + ": " + problem(r));
        await load();
      }));
      actions.appendChild(button("End sessions", "End sessions of " + user.name, async function () {
        var r = await api("DELETE", userUrl(user.name) + "/sessions");
        if (r.ok) say("Every session of " + user.name + " has ended.");
        else fail("Could not end the sessions of " + user.name + ": " + problem(r));
      }));
      actions.appendChild(button("Delete", "Delete " + user.name, async function () {
        if (!window.confirm("Delete the user " + user.name + "?")) return;
        var r = await api("DELETE", userUrl(user.name));
        if (r.ok) say("Deleted " + user.name + ".");
        else fail("Could not delete " + user.name + ": " + problem(r));
        await load();
      }));
      body.appendChild(row);
    });
    $("users").setAttribute("aria-busy", "false");
  }

  $("user-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var name = $("user-name").value.trim();
    var reply = await api("PUT", userUrl(name), JSON.stringify({
      password: $("user-password").value,
      roles: roleList($("user-roles").value)
    }));
    if (reply.ok) {
      say("Created " + name + ".");
      $("user-form").reset();
      await load();
    } else {
      fail("Could not create " + name + ": " + problem(reply));
    }
  });

  window.porticoConsole = window.porticoConsole || {};
  window.porticoConsole.users = { load: load };
})();
