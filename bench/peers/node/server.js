// The minimal socket.io chat server: every `message` is broadcast to every client,
// the sender included. Listens on 127.0.0.1 only; PORT sets the port.
const { createServer } = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 3200);
const httpServer = createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("message", (text) => {
    io.emit("message", text);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`node socket.io peer listening on 127.0.0.1:${port}`);
});
