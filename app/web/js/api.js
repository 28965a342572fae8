// The public /v1 API with the user's key, the only thing the dashboard talks to. The key lives in
// sessionStorage (gone with the tab), and travels in the Authorization header, never in a URL.

const KEY = "kiln.key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.details = error.details || [];
  }
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, one);
  }
  return u;
}

export async function request(method, path, { params, json, body, headers, signal } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${key.get()}`, ...(headers || {}) }, signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url(path, params), init);
  if (!response.ok) {
    let parsed = null;
    try { parsed = await response.json(); } catch { /* not JSON: the status says it */ }
    if (response.status === 401 && path !== "/v1/usage") window.dispatchEvent(new Event("kiln:signed-out"));
    throw new ApiError(response.status, parsed);
  }
  return response;
}

export async function get(path, params) {
  return (await request("GET", path, { params })).json();
}

export async function post(path, json, params) {
  const response = await request("POST", path, { json, params });
  return response.status === 204 ? null : response.json();
}

export async function blob(method, path, options) {
  return (await request(method, path, options)).blob();
}

// A job's Server-Sent Events, read with fetch (EventSource cannot send the key in a header),
// resumed with Last-Event-ID after a dropped connection; ends with the job or when aborted.
export async function followEvents(jobId, onEvent, signal) {
  let last = 0;
  for (let tries = 0; !signal.aborted && tries < 20; tries++) {
    try {
      const response = await request("GET", `/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        headers: last ? { "Last-Event-ID": String(last) } : {}, signal,
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { id: 0, kind: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) event.id = Number(line.slice(4));
            else if (line.startsWith("event: ")) event.kind = line.slice(7);
            else if (line.startsWith("data: ")) event.data += line.slice(6);
          }
          if (!event.data) continue;  // a keep-alive comment
          last = event.id || last;
          onEvent(event.kind, JSON.parse(event.data));
          if (event.kind === "end") return;
        }
      }
    } catch (error) {
      if (signal.aborted || (error instanceof ApiError && error.status < 500 && error.status !== 429)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// A multipart upload with progress (fetch cannot report an upload's progress; XMLHttpRequest can).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${key.get()}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "the upload failed: no answer from the server" } }));
    xhr.send(form);
  });
}

export function saveBlob(data, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(data);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
