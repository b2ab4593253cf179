// One game: questions against the countdown, the final wager, the reveal with the answer
// result's explanation, and the results. The game in progress is remembered in sessionStorage
// (its id, when each question was first shown, the locked wager), so a reload resumes it
// through GET /api/game/session/{id} without giving back any time or a second wager.

import * as api from "./api.js";
import { Countdown } from "./countdown.js";
import { $, LETTERS, describe, notice, show, signed } from "./ui.js";

const SAVED = "trivia.game";
const LOW_SECONDS = 5;

let game = null; // {sessionId, questions, answered: Map id -> result, limits, shown, wager...}
let countdown = null;
let selected = null;
let sending = false;
let unsent = null; // an answer whose sending failed: sent again unchanged on "Lock in"

// --- remembering the game across reloads ------------------------------------------------------

export function savedSessionId() {
  try {
    return JSON.parse(sessionStorage.getItem(SAVED))?.sessionId ?? null;
  } catch {
    return null;
  }
}

function save() {
  const { sessionId, shown, wager, wagerLocked } = game;
  sessionStorage.setItem(SAVED, JSON.stringify({ sessionId, shown, wager, wagerLocked }));
}

export function forget() {
  countdown?.stop();
  game = null;
  sessionStorage.removeItem(SAVED);
}

export const inProgress = () => game !== null && nextIndex() !== -1;

function load(body, saved = {}) {
  game = {
    sessionId: body.sessionId,
    questions: body.questions,
    answered: new Map((body.answers ?? []).map((a) => [a.questionId, a])),
    questionSeconds: body.questionSeconds,
    finalSeconds: body.finalQuestionSeconds,
    maxWager: body.maxWager ?? 0, // the wager limit: the state route's, then kept up to date
    shown: saved.shown ?? {},
    wager: saved.wager ?? null,
    wagerLocked: saved.wagerLocked ?? false,
  };
  if (body.degraded) {
    notice(
      "degraded",
      "The game service is running in degraded mode: this game is kept on one server " +
        "until its storage recovers. You can keep playing.",
    );
  }
}

// --- starting and resuming -------------------------------------------------------------------

export async function start() {
  forget();
  const created = await api.createGame();
  load(created);
  save();
  next();
}

/** Resume the remembered game; throws the API's error (404 expired, 403 not yours). */
export async function resume(sessionId) {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(SAVED)) ?? {};
  } catch {
    // an unreadable entry: resume with nothing remembered
  }
  load(await api.gameState(sessionId), saved);
  save();
  const index = nextIndex();
  if (index > 0) {
    const where = isFinal(index) ? "the final question" : `question ${index + 1} of ${game.questions.length}`;
    notice("info", `Welcome back: your game goes on at ${where}.`);
  }
  next();
}

/** Go on with the game in memory (after a visit to the profile, say). */
export function proceed() {
  next();
}

function nextIndex() {
  return game.questions.findIndex((q) => !game.answered.has(q.id));
}

const isFinal = (index) => index === game.questions.length - 1;

function score() {
  let total = 0;
  for (const result of game.answered.values()) total += result.totalPoints;
  return total;
}

function next() {
  const index = nextIndex();
  if (index === -1) {
    showResults();
  } else if (isFinal(index) && !game.wagerLocked && !(game.questions[index].id in game.shown)) {
    showWager(index);
  } else {
    showQuestion(index);
  }
}

// --- the wager -------------------------------------------------------------------------------

function showWager(index) {
  const question = game.questions[index];
  const max = game.maxWager;
  $("wager-topic").textContent = question.topic;
  $("wager-score").textContent = String(score());
  $("wager-max").textContent = String(max);
  $("wager-end").textContent = String(max);
  const range = $("wager-range");
  range.max = String(max);
  range.value = String(Math.min(Number(range.value) || 0, max));
  $("wager-value").textContent = range.value;
  $("wager-control").hidden = max === 0;
  $("wager-none").hidden = max !== 0;
  $("wager-lock").textContent = max === 0 ? "Show the final question" : "Lock in wager and show the question";
  show("wager");
  if (max > 0) range.focus();
}

export function wagerMoved() {
  $("wager-value").textContent = $("wager-range").value;
}

export function lockWager() {
  const amount = Math.min(Number($("wager-range").value), game.maxWager);
  game.wager = amount > 0 ? amount : null; // a wager of 0 is no wager
  game.wagerLocked = true;
  save();
  showQuestion(nextIndex());
}

// --- a question ------------------------------------------------------------------------------

function optionButtons() {
  return [...document.querySelectorAll("#options .option")];
}

function showQuestion(index) {
  const question = game.questions[index];
  const final = isFinal(index);
  selected = null;
  unsent = null;
  $("q-progress").textContent = final
    ? `Final question (${index + 1} of ${game.questions.length})`
    : `Question ${index + 1} of ${game.questions.length}`;
  $("q-score").textContent = String(score());
  $("q-wager").hidden = !(final && game.wager !== null);
  $("q-wager").textContent = `Wager ${game.wager ?? 0}`;
  $("q-topic").textContent = question.topic;
  $("q-difficulty").textContent = question.difficulty;
  const heading = $("q-text");
  heading.textContent = question.text;
  heading.dataset.questionId = question.id;
  for (const [i, button] of optionButtons().entries()) {
    button.disabled = false;
    button.className = "option";
    button.setAttribute("aria-pressed", "false");
    button.querySelector(".label").textContent = question.options[i];
    button.setAttribute("aria-label", `${LETTERS[i]}: ${question.options[i]}`);
  }
  $("lock-in").disabled = true;
  $("lock-row").hidden = false;
  $("reveal").hidden = true;
  show("question");

  game.shown[question.id] ??= Date.now();
  save();
  const seconds = final ? game.finalSeconds : game.questionSeconds;
  countdown?.stop();
  countdown = new Countdown(seconds, game.shown[question.id], { onTick: drawTimer, onEnd: timeUp });
  $("timer").classList.remove("stopped");
  countdown.start();
}

function drawTimer(left, seconds) {
  $("timer-count").textContent = String(Math.ceil(left));
  $("timer-fill").style.transform = `scaleX(${left / seconds})`;
  $("timer").classList.toggle("low", left <= LOW_SECONDS);
}

export function choose(option) {
  if (sending || unsent || $("screen-question").hidden || !$("reveal").hidden) return;
  selected = option;
  for (const [i, button] of optionButtons().entries()) {
    button.setAttribute("aria-pressed", String(i === option));
  }
  $("lock-in").disabled = false;
}

export function lockIn() {
  if (sending || !$("reveal").hidden || $("screen-question").hidden) return;
  if (unsent) submit(unsent);
  else if (selected !== null) submit(answerBody(selected, countdown.remaining()));
}

function timeUp() {
  if (!sending && !unsent && $("reveal").hidden) submit(answerBody(null, 0));
}

/** The answer as sent: timeRemaining is the countdown's value at this moment, never more. */
function answerBody(option, timeRemaining) {
  const index = nextIndex();
  const body = {
    sessionId: game.sessionId,
    questionId: game.questions[index].id,
    selectedOption: option,
    timeRemaining,
  };
  if (isFinal(index) && game.wager !== null) body.wager = game.wager;
  return body;
}

async function submit(body) {
  const index = nextIndex();
  const question = game.questions[index];
  countdown.stop();
  $("timer").classList.add("stopped");
  for (const button of optionButtons()) button.disabled = true;
  $("lock-in").disabled = true;
  sending = true;
  let result;
  try {
    result = await api.answer(body);
  } catch (error) {
    notice("error", `${describe(error)} Press “Lock in answer” to send your answer again.`);
    unsent = body;
    $("lock-in").disabled = false;
    return;
  } finally {
    sending = false;
  }
  notice("error", null);
  unsent = null;
  const option = body.selectedOption;
  game.answered.set(question.id, { ...result, selectedOption: option, questionIndex: index });
  game.maxWager = Math.floor(Math.max(score(), 0) / 2); // the server's rule, as in the state route
  reveal(question, option, result, isFinal(index));
}

function verdict(question, option, result, final) {
  const answer = `${LETTERS[result.correctAnswer]}: ${question.options[result.correctAnswer]}`;
  if (result.correct) {
    if (final) {
      return result.wager ? `Correct! You win your wager: ${signed(result.totalPoints)} points.` : "Correct!";
    }
    const bonus = result.speedBonus ? ` (100 + ${result.speedBonus} speed bonus)` : "";
    return `Correct! ${signed(result.totalPoints)} points${bonus}.`;
  }
  const lost = final && result.wager ? ` You lose your wager: ${signed(result.totalPoints)} points.` : "";
  const opening = option === null ? "Time ran out." : "Not quite.";
  return `${opening} The answer is ${answer}.${lost}`;
}

function reveal(question, option, result, final) {
  for (const [i, button] of optionButtons().entries()) {
    if (i === result.correctAnswer) button.classList.add("is-correct");
    else if (i === option) button.classList.add("is-wrong");
  }
  const box = $("verdict");
  box.textContent = verdict(question, option, result, final);
  box.className = `verdict ${result.correct ? "good" : "bad"}`;
  $("explanation").textContent = result.explanation;
  $("q-score").textContent = String(score());
  $("next").textContent = final ? "See your results" : "Next question";
  $("lock-row").hidden = true;
  $("reveal").hidden = false;
  $("next").focus();
}

export function nextQuestion() {
  if ($("reveal").hidden) return;
  notice("info", null); // "welcome back" and the like: the player has moved on
  next();
}

// --- results ---------------------------------------------------------------------------------

async function showResults() {
  countdown?.stop();
  let results;
  try {
    results = await api.results(game.sessionId);
  } catch (error) {
    notice("error", describe(error));
    return;
  }
  $("r-score").textContent = String(results.totalScore);
  $("r-summary").textContent = summary(results);
  const wager = results.wagerResult;
  $("r-wager").textContent = wager?.wagerAmount
    ? `Final wager of ${wager.wagerAmount}: ${wager.won ? "won" : "lost"} (${signed(wager.pointsChange)}).`
    : "No wager on the final question.";
  showRewards(results);
  renderReview(results);
  show("results");
}

function summary(results) {
  const correct = `${results.totalCorrect} of ${results.totalQuestions} correct`;
  const fastest = results.fastestAnswer;
  if (!fastest) return `${correct}.`;
  return `${correct} · fastest right answer: question ${fastest.questionIndex + 1} in ${fastest.responseTime.toFixed(1)} s.`;
}

function showRewards(results) {
  const rewards = results.progression;
  const signedIn = !document.querySelector("[data-signed-in]").hidden;
  $("r-rewards").hidden = !rewards;
  if (rewards) {
    $("r-xp").textContent = String(rewards.xpEarned);
    $("r-gems").textContent = String(rewards.gemsEarned);
  }
  const none = $("r-no-rewards");
  none.hidden = Boolean(rewards);
  none.textContent = signedIn
    ? "XP and gems are added once the game service's storage is back; open your results again later."
    : "Played without an account: sign in or create one to earn XP and gems.";
}

function renderReview(results) {
  const list = $("review");
  list.replaceChildren();
  for (const answer of results.answers) {
    list.append(reviewItem(answer));
  }
}

function line(text, className) {
  const p = document.createElement("p");
  p.className = `r-line ${className}`;
  p.textContent = text;
  return p;
}

function reviewItem(answer) {
  const question = game.questions[answer.questionIndex];
  const item = document.createElement("li");
  item.className = answer.correct ? "right" : "wrong";
  const head = document.createElement("div");
  head.className = "r-head";
  const where = document.createElement("span");
  where.textContent = `${answer.questionIndex + 1}. ${question.topic}${answer.wager != null ? " · final" : ""}`;
  const points = document.createElement("span");
  points.className = "r-points";
  points.textContent = `${signed(answer.totalPoints)} pts`;
  head.append(where, points);
  const text = document.createElement("p");
  text.className = "r-question";
  text.textContent = question.text;
  item.append(head, text);
  const option = (i) => `${LETTERS[i]}: ${question.options[i]}`;
  if (answer.selectedOption === null) item.append(line("No answer: time ran out.", "wrong"));
  else item.append(line(`Your answer: ${option(answer.selectedOption)}`, answer.correct ? "right" : "wrong"));
  if (!answer.correct) item.append(line(`Correct answer: ${option(answer.correctAnswer)}`, "right"));
  const explanation = game.answered.get(answer.questionId)?.explanation;
  if (explanation) {
    const details = document.createElement("details");
    const label = document.createElement("summary");
    label.textContent = "Why";
    const body = document.createElement("p");
    body.textContent = explanation;
    details.append(label, body);
    item.append(details);
  }
  return item;
}
