// The landing page: what the running edge says about itself.
"use strict";

async function show(id, url, describe) {
  const target = document.getElementById(id);
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    target.textContent = response.ok
      ? describe(await response.json().catch(() => null))
      : `${url} answered ${response.status}`;
  } catch (err) {
    target.textContent = `${url} could not be reached`;
  }
}

show("health", "/healthz", () => "ok");
show("flags", "/api/config", (config) => {
  const names = Object.keys((config && config.flags) || {});
  return names.length ? names.join(", ") : "none stored yet";
});
