// The sign-in page: carries `next` from the query into the form and shows
// the error the server redirected back with (`?error=invalid`).
"use strict";
(function () {
  var params = new URLSearchParams(window.location.search);
  var next = params.get("next");
  // Only paths on this site; the server checks again.
  if (next && /^\/(?![\/\\])/.test(next)) {
    document.getElementById("next").value = next;
  }
  if (params.get("error") === "invalid") {
    document.getElementById("error").textContent = "Wrong username or password. Please try again.";
    var username = document.getElementById("username");
    username.setAttribute("aria-invalid", "true");
    username.setAttribute("aria-describedby", "error");
    username.focus();
  }
})();
