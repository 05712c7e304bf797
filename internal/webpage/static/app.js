// teesign's verifier page: it gathers the inputs, hands them to the
// verifier compiled to WebAssembly (teesignVerify, defined by verify.wasm)
// and shows its answer. It sends nothing the user gives anywhere: the only
// requests are for the page's own files, the registry of builds (when a
// compose file is given) and collateral (unless turned off).
"use strict";

const $ = (id) => document.getElementById(id);

let engineReady = null;

function loadEngine() {
  const go = new Go();
  const fetched = fetch("verify.wasm");
  const inst = WebAssembly.instantiateStreaming(fetched, go.importObject).catch(async () => {
    // A static host that does not say application/wasm.
    const bytes = await (await fetch("verify.wasm")).arrayBuffer();
    return WebAssembly.instantiate(bytes, go.importObject);
  });
  engineReady = inst.then((r) => {
    const ready = new Promise((resolve) => window.addEventListener("teesign-ready", resolve, { once: true }));
    go.run(r.instance);
    return typeof window.teesignVerify === "function" ? undefined : ready;
  });
  engineReady.then(() => {
    $("engine").textContent = "Verifier loaded: checks run on this device.";
    $("verify-button").disabled = false;
  }, (err) => {
    $("engine").textContent = "The verifier could not be loaded: " + err;
  });
}

// base64url (with or without padding) to text.
function fromB64url(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function toB64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// readFragment fills the form from #bundle=…&trust_root=…&policy=…&compose=…
// &any_workload=1&offline=1 and reports whether it held a bundle.
function readFragment() {
  if (location.hash.length < 2) return false;
  const p = new URLSearchParams(location.hash.slice(1));
  const text = (k) => (p.has(k) ? fromB64url(p.get(k)) : null);
  try {
    if (p.has("bundle")) $("bundle").value = text("bundle");
    if (p.has("trust_root")) $("trust-root").value = p.getAll("trust_root").map(fromB64url).join("\n");
    if (p.has("policy")) $("policy").value = text("policy");
    if (p.has("compose")) $("compose").value = text("compose");
  } catch (e) {
    showError("The link's inputs are not valid base64url: " + e.message);
    return false;
  }
  $("any-workload").checked = p.get("any_workload") === "1";
  if (p.get("offline") === "1") $("collateral").checked = false;
  return p.has("bundle");
}

function shareLink() {
  const p = new URLSearchParams();
  const add = (k, v) => { if (v.trim() !== "") p.append(k, toB64url(v)); };
  add("bundle", $("bundle").value);
  add("trust_root", $("trust-root").value);
  add("policy", $("policy").value);
  add("compose", $("compose").value);
  if ($("any-workload").checked) p.set("any_workload", "1");
  if (!$("collateral").checked) p.set("offline", "1");
  return location.origin + location.pathname + "#" + p.toString();
}

async function registry() {
  const get = async (name) => {
    const r = await fetch("registry/" + name);
    if (r.status === 404) return "";
    if (!r.ok) throw new Error("registry/" + name + ": HTTP " + r.status);
    return r.text();
  };
  return { source: new URL("registry/", location.href).href, tdx_csv: await get("tdx.csv"), sev_json: await get("sev.json") };
}

async function buildRequest() {
  const req = { any_workload: $("any-workload").checked };
  if ($("collateral").checked) req.collateral_base = new URL("collateral", location.href).href;
  else req.offline = true;
  const roots = $("trust-root").value.trim();
  if (roots) req.trust_roots = [roots];
  if ($("policy").value.trim()) req.policy = $("policy").value;
  if ($("compose").value.trim()) {
    req.compose = $("compose").value;
    req.registry = await registry();
  }
  const bundle = $("bundle").value.trim();
  if (bundle) {
    try {
      req.bundle = JSON.parse(bundle);
    } catch (e) {
      throw new Error("The bundle is not JSON: " + e.message);
    }
  } else {
    req.quote = $("quote").value.trim();
    req.message = $("message").value;
    req.message_encoding = $("message-encoding").value;
    req.signature = $("signature").value.trim();
    req.signature_format = $("signature-format").value;
    if ($("public-key").value.trim()) req.public_key = $("public-key").value;
    if ($("key-type").value) req.key_type = $("key-type").value;
  }
  return req;
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function clearOutput() {
  $("checks").replaceChildren();
  $("details").replaceChildren();
}

function showError(msg) {
  clearOutput();
  const v = $("verdict");
  v.hidden = false;
  v.dataset.valid = "false";
  v.replaceChildren(el("span", "Could not verify"), el("span", msg, { class: "sub" }));
}

function table(rows) {
  const t = el("table");
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", k, { scope: "row" }), el("td", v));
    t.append(tr);
  }
  return t;
}

function show(res, elapsed) {
  clearOutput();
  const v = $("verdict");
  v.hidden = false;
  v.dataset.valid = res.valid ? "true" : "false";
  v.dataset.elapsedMs = elapsed.toFixed(1);
  const failed = res.checks.filter((c) => c.status === "fail").map((c) => c.name);
  let sub = res.valid
    ? "Every check passed" + (res.any_workload ? ", for any workload (none was pinned)" : "") + "."
    : "Failed: " + failed.join(", ") + ".";
  sub += " Verified here in " + elapsed.toFixed(0) + " ms.";
  v.replaceChildren(el("span", res.valid ? "Valid signature" : "Not valid"), el("span", sub, { class: "sub" }));
  for (const c of res.checks) {
    const li = el("li", null, { "data-check": c.name, "data-status": c.status });
    li.append(el("span", c.status, { class: "status" }), el("strong", c.name));
    if (c.reason) li.append(document.createTextNode(": " + c.reason));
    if (c.rules && c.rules.length) li.append(el("span", " (rules: " + c.rules.join(", ") + ")", { class: "hint" }));
    $("checks").append(li);
  }
  const d = $("details");
  const key = [["TEE", res.tee || "(unreadable)"], ["key type", res.key_type]];
  if (res.ethereum_address) key.push(["Ethereum address", res.ethereum_address]);
  if (res.signer) key.push(["signature recovers", res.signer]);
  if (res.tcb_status) key.push(["TCB status", res.tcb_status + (res.qe_status ? " (QE: " + res.qe_status + ")" : "")]);
  d.append(el("h2", "Key"), table(key));
  if (res.public_key) d.append(el("pre", res.public_key));
  if (res.workload) {
    const w = res.workload;
    const rows = [["status", w.status]];
    for (const k of ["template", "artifacts_version", "env", "vm_type", "reason"]) if (w[k]) rows.push([k, w[k]]);
    d.append(el("h2", "SecretVM build"), table(rows));
  }
  if (res.measurements) {
    const rows = Object.keys(res.measurements).sort().map((k) => [k, JSON.stringify(res.measurements[k]).replace(/^"|"$/g, "")]);
    d.append(el("h2", "Measurements"), table(rows));
  }
}

async function verify(ev) {
  if (ev) ev.preventDefault();
  const button = $("verify-button");
  button.disabled = true;
  try {
    await engineReady;
    const req = await buildRequest();
    const out = JSON.parse(await window.teesignVerify(JSON.stringify(req)));
    if (out.error) showError(out.error);
    else show(out.result, out.elapsed_ms);
  } catch (e) {
    showError(e.message || String(e));
  } finally {
    button.disabled = false;
    $("output").scrollIntoView({ block: "nearest" });
  }
}

function readFile(file) {
  file.text().then((t) => {
    $("bundle").value = t;
    verify();
  });
}

function setup() {
  loadEngine();
  $("form").addEventListener("submit", verify);
  $("share").addEventListener("click", async () => {
    const link = shareLink();
    try {
      await navigator.clipboard.writeText(link);
      $("share-status").textContent = "Link copied.";
    } catch (e) {
      $("share-status").textContent = "Copy this link: " + link;
    }
  });
  const drop = $("drop");
  const file = $("bundle-file");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); }
  });
  file.addEventListener("change", () => { if (file.files.length) readFile(file.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) readFile(e.dataTransfer.files[0]);
  });
  if (readFragment()) verify();
  window.addEventListener("hashchange", () => { if (readFragment()) verify(); });
}

setup();
