// Raw JavaScript contenders: the physical limit for anything running in this browser.
// Every function resolves with plain JSON-able figures; times come from performance.now().

const now = () => performance.now();

function openSocket(url, binary = false) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    if (binary) ws.binaryType = "arraybuffer";
    ws.onopen = () => { ws.onopen = ws.onerror = null; resolve(ws); };
    ws.onerror = () => reject(new Error(`cannot open ${url}`));
  });
}

function closeSocket(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) { resolve(); return; }
    ws.onclose = () => { ws.onclose = null; resolve(); };
    ws.close();
  });
}

window.benchJs = {
  // 1. Receive throughput: N JSON messages, each parsed by the handler.
  async recv(url, n) {
    const ws = await openSocket(url);
    const result = await new Promise((resolve) => {
      let count = 0, bad = 0, t0 = 0;
      ws.onmessage = (event) => {
        const msg = JSON.parse(event.data);
        if (count === 0) t0 = now();
        count += 1;
        if (msg.seq !== count) bad += 1;
        if (count === n) resolve({ n, seconds: (now() - t0) / 1000, bad });
      };
      ws.send("go");
    });
    await closeSocket(ws);
    return result;
  },

  // 2. Round-trip latency: N sequential echoes, the next sent from the message handler.
  async rtt(url, n) {
    const ws = await openSocket(url);
    const payload = JSON.stringify({ seq: 0, ts: 1732520000.123, kind: "ping", v: "abcdefghij" });
    const samples = await new Promise((resolve) => {
      const out = [];
      let sent = 0;
      ws.onmessage = () => {
        out.push(now() - sent);
        if (out.length === n) { resolve(out); return; }
        sent = now();
        ws.send(payload);
      };
      sent = now();
      ws.send(payload);
    });
    await closeSocket(ws);
    return { samples };
  },

  // 3. Binary: send SIZE bytes (timed until the server reports their length, and the send() call
  // alone: the main-thread cost of handing the bytes to the browser) and receive SIZE bytes.
  async binary(url, size, reps) {
    const ws = await openSocket(url, true);
    let pending = null;
    ws.onmessage = (event) => { const p = pending; pending = null; p(event.data); };
    const next = () => new Promise((resolve) => { pending = resolve; });
    const send = [], call = [], recv = [];
    for (let i = 0; i < reps; i++) {
      const t0 = now();
      const payload = new Uint8Array(size);
      payload.fill(0x5a);
      const reply = next();
      const c0 = now();
      ws.send(payload);
      call.push((now() - c0) / 1000);
      const got = await reply;
      if (Number(got) !== size) throw new Error(`server got ${got} bytes, sent ${size}`);
      send.push((now() - t0) / 1000);
      const t1 = now();
      const incoming = next();
      ws.send(`get ${size}`);
      const data = new Uint8Array(await incoming);
      if (data.length !== size) throw new Error(`received ${data.length} bytes, wanted ${size}`);
      recv.push((now() - t1) / 1000);
    }
    await closeSocket(ws);
    return { size, send, call, recv };
  },

  // 4. SSE receive throughput through the browser's EventSource.
  sse(url, n) {
    return new Promise((resolve, reject) => {
      const source = new EventSource(url);
      let count = 0, bad = 0, t0 = 0;
      source.onmessage = (event) => {
        const msg = JSON.parse(event.data);
        if (count === 0) t0 = now();
        count += 1;
        if (msg.seq !== count) bad += 1;
      };
      source.addEventListener("done", () => {
        const seconds = (now() - t0) / 1000;
        source.close();
        resolve({ n: count, seconds, bad: bad + (count === n ? 0 : 1) });
      });
      source.onerror = () => { if (count === 0) { source.close(); reject(new Error("EventSource failed")); } };
    });
  },

  // 6. Memory: N connect/close cycles.
  async cycles(url, n) {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      const ws = await openSocket(url);
      await closeSocket(ws);
    }
    return { n, seconds: (now() - t0) / 1000 };
  },
};
window.benchJsReady = true;
