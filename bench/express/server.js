// The platform page's Express handler (../shared/seeds), unchanged but for the port:
// the peer that `roomc serve`'s join route is measured against.
const express = require("express");
const app = express();
app.use(express.urlencoded({ extended: true }));
app.use(express.json());
app.post("/conference/join", (req, res) => {
  const roomName = req.query.room ?? "default-room";
  const isHost = req.query.host === "1";
  res.json({
    actions: [
      {
        say: {
          text: isHost
            ? `You are joining ${roomName} as the host.`
            : `You are joining ${roomName}. Please wait for the host.`,
        },
      },
      {
        conference: {
          name: roomName,
          startOnEnter: isHost,
          endOnExit: isHost,
          beep: true,
          maxParticipants: 10,
          waitUrl: "https://yourapp.example.com/hold-music.mp3",
          statusEventsCallbackUrl: "https://yourapp.example.com/conference/events",
          statusEvents: "start end join leave mute unmute",
        },
      },
    ],
  });
});
app.post("/conference/events", (req, res) => {
  const { ConferenceName, StatusCallbackEvent, CallId } = req.body;
  res.sendStatus(204);
});
app.listen(Number(process.env.PORT || 3000), "127.0.0.1");
