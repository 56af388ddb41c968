// Socket.IO peer for the fan-out benchmark: the same job as the other servers.
// Subscribers join the room "bench"; a client connected with ?role=pub emits "publish" and the
// server re-emits the payload as "pub" to the room. WebSocket transport only, no compression.
// Prints "socketio-server listening on http://127.0.0.1:PORT" (PORT 0 picks a free one).
const http = require("node:http");
const { Server } = require("socket.io");

const server = http.createServer();
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });

io.on("connection", (socket) => {
  if (socket.handshake.query.role === "pub") {
    socket.on("publish", (data) => io.to("bench").emit("pub", data));
  } else {
    socket.join("bench");
  }
});

server.listen({ host: "127.0.0.1", port: Number(process.env.PORT || 0), backlog: 2048 }, () => {
  console.log(`socketio-server listening on http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));
