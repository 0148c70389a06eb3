// REST calls under /api with the optional API key (Authorization: Bearer KEY); the key lives in localStorage.

const KEY_STORAGE = 'claritymentor.apiKey';

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage blocked (private mode): the key lasts for this page only
  }
}

async function request(method, path) {
  const headers = { Accept: 'application/json' };
  const key = getApiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(path, { method, headers });
  } catch {
    throw new ApiError(0, 'The server cannot be reached.', 'network');
  }
  if (res.status === 204) return null;
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body && body.detail, body && body.code);
  return body;
}

export const api = {
  listSessions: () => request('GET', '/api/sessions'),
  history: (id) => request('GET', `/api/sessions/${encodeURIComponent(id)}/history`),
  deleteSession: (id) => request('DELETE', `/api/sessions/${encodeURIComponent(id)}`),
  createSession: () => request('POST', '/api/sessions'),
};
