// A question's countdown, from the moment the question was first shown (kept across a reload,
// so reloading never buys time). `remaining()` is what an answer reports as timeRemaining:
// the honest value, never more than the time really left.

const TICK_MS = 200;

export class Countdown {
  constructor(seconds, startedAt, { onTick, onEnd }) {
    this.seconds = seconds;
    this.startedAt = startedAt;
    this.onTick = onTick;
    this.onEnd = onEnd;
    this.timer = null;
  }

  start() {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  /** Seconds left, rounded down to hundredths, never below 0. */
  remaining() {
    const left = this.seconds - (Date.now() - this.startedAt) / 1000;
    return Math.max(0, Math.floor(left * 100) / 100);
  }

  tick() {
    const left = this.remaining();
    this.onTick(left, this.seconds);
    if (left <= 0) {
      this.stop();
      this.onEnd();
    }
  }

  stop() {
    clearInterval(this.timer);
  }
}
