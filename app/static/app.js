// The page's entry point: restores the signed-in player, resumes a game in progress, and wires
// the screens (home, sign-in, game, results, profile) and the keyboard.

import * as api from "./api.js";
import * as play from "./play.js";
import { $, clearNotices, currentScreen, describe, notice, show, showAccount } from "./ui.js";

const MAX_AVATAR_BYTES = 5 * 1024 * 1024;
const HEALTH_RECHECK_MS = 30_000; // while degraded: the notice goes once the service recovers
let user = null;

function setUser(next) {
  user = next;
  showAccount(user);
}

async function checkHealth() {
  let degraded;
  try {
    const health = await api.health();
    degraded =
      health.status === "degraded"
        ? "The game service is running in degraded mode: new games are kept on one server " +
          "until its storage recovers, and some games or accounts may be unavailable for a while."
        : null;
  } catch (error) {
    degraded = describe(error);
  }
  notice("degraded", degraded);
  if (degraded) setTimeout(checkHealth, HEALTH_RECHECK_MS);
}

// --- playing ---------------------------------------------------------------------------------

async function playNow() {
  clearNotices();
  if (play.inProgress()) {
    play.proceed();
    return;
  }
  try {
    await play.start();
  } catch (error) {
    notice("error", describe(error));
  }
}

async function resumeSaved() {
  const sessionId = play.savedSessionId();
  if (!sessionId) return false;
  try {
    await play.resume(sessionId);
    return true;
  } catch (error) {
    play.forget();
    const reasons = {
      404: "Your last game has expired: start a new one.",
      403: "Your last game belongs to another player: start a new one.",
    };
    notice(reasons[error.status] ? "info" : "error", reasons[error.status] ?? describe(error));
    return false;
  }
}

// --- signing in and out ----------------------------------------------------------------------

function showAuth(tab = "signin") {
  selectTab(tab);
  show("auth");
}

function selectTab(tab) {
  for (const name of ["signin", "signup"]) {
    const selected = name === tab;
    $(`tab-${name}`).setAttribute("aria-selected", String(selected));
    $(`tab-${name}`).tabIndex = selected ? 0 : -1;
    $(`form-${name}`).hidden = !selected;
  }
  $("auth-title").textContent = tab === "signin" ? "Sign in" : "Create an account";
}

function fieldErrors(fields) {
  for (const name of ["name", "email", "password"]) {
    const message = fields.find((f) => f.field === name)?.message;
    const box = $(`signup-${name}-error`);
    box.textContent = message ?? "";
    box.hidden = !message;
    $(`signup-${name}`).setAttribute("aria-invalid", String(Boolean(message)));
  }
}

function formError(form, error) {
  const box = $(`${form}-error`);
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

async function signedIn(player) {
  setUser(player);
  clearNotices();
  notice("info", `Welcome, ${player.name}! Your finished games now earn XP and gems.`);
  show("home");
}

async function submitSignin(event) {
  event.preventDefault();
  formError("signin", null);
  try {
    await signedIn(await api.login($("signin-email").value, $("signin-password").value));
    $("form-signin").reset();
  } catch (error) {
    formError("signin", error);
  }
}

async function submitSignup(event) {
  event.preventDefault();
  formError("signup", null);
  fieldErrors([]);
  const name = $("signup-name").value;
  try {
    await signedIn(await api.signup(name, $("signup-email").value, $("signup-password").value));
    $("form-signup").reset();
  } catch (error) {
    fieldErrors(error.fields ?? []);
    formError("signup", error.fields?.length ? null : error);
    document.querySelector("#form-signup [aria-invalid='true']")?.focus();
  }
}

async function logout() {
  clearNotices();
  try {
    await api.logout();
  } catch (error) {
    notice("error", describe(error));
  }
  play.forget(); // a signed-in player's game cannot be continued once signed out
  setUser(null);
  notice("info", "You are logged out. You can still play without an account.");
  show("home");
}

// --- profile ---------------------------------------------------------------------------------

async function showProfile() {
  clearNotices();
  let profile;
  try {
    profile = await api.profile();
  } catch (error) {
    notice("error", describe(error));
    return;
  }
  $("p-name").textContent = profile.name;
  $("p-email").textContent = profile.email;
  $("p-initials").textContent = profile.name.trim().charAt(0).toUpperCase();
  showAvatar(profile.avatarUrl);
  $("p-xp").textContent = String(profile.totalXp);
  $("p-gems").textContent = String(profile.totalGems);
  $("p-games").textContent = String(profile.gamesPlayed);
  $("p-best").textContent = String(profile.bestScore);
  $("p-accuracy").textContent = `${profile.overallAccuracy}%`;
  for (const radio of document.querySelectorAll("input[name='timer']")) {
    radio.checked = Number(radio.value) === profile.timerMultiplier;
  }
  $("timer-status").textContent = "";
  $("p-file-status").textContent = "";
  $("p-play").textContent = play.inProgress() ? "Back to your game" : "Play";
  show("profile");
}

function showAvatar(url) {
  $("p-avatar").hidden = !url;
  $("p-initials").hidden = Boolean(url);
  // The URL is absolute (PUBLIC_BASE_URL) for other clients; this page loads it from its own
  // origin, which is all its Content-Security-Policy allows.
  if (url) $("p-avatar").src = new URL(url).pathname;
}

async function changeTimer(event) {
  const status = $("timer-status");
  try {
    await api.setTimer(Number(event.target.value));
    status.textContent = "Saved: your next game uses this timer.";
  } catch (error) {
    status.textContent = describe(error);
  }
}

async function changeAvatar(event) {
  const file = event.target.files[0];
  const status = $("p-file-status");
  event.target.value = "";
  if (!file) return;
  if (file.size > MAX_AVATAR_BYTES) {
    status.textContent = "That picture is larger than 5 MB: choose a smaller one.";
    return;
  }
  status.textContent = "Uploading…";
  try {
    const { avatarUrl } = await api.uploadAvatar(file);
    showAvatar(avatarUrl);
    status.textContent = "Picture saved.";
  } catch (error) {
    status.textContent = describe(error);
  }
}

// --- keyboard --------------------------------------------------------------------------------

const KEYS = { 1: 0, 2: 1, 3: 2, 4: 3, a: 0, b: 1, c: 2, d: 3 };

function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey || currentScreen() !== "question") return;
  const key = event.key.toLowerCase();
  if (key in KEYS) {
    play.choose(KEYS[key]);
    event.preventDefault();
  } else if (key === "enter" && event.target.id !== "next" && event.target.id !== "lock-in") {
    // Enter confirms: on a focused option it picks that one and locks it in.
    const option = event.target.closest?.(".option");
    if (option) play.choose(Number(option.dataset.option));
    play.lockIn();
    event.preventDefault();
  }
}

// --- wiring ----------------------------------------------------------------------------------

function on(id, type, handler) {
  $(id).addEventListener(type, handler);
}

function wire() {
  on("play", "click", playNow);
  on("p-play", "click", playNow);
  on("again", "click", () => {
    play.forget();
    playNow();
  });
  on("nav-signin", "click", () => showAuth("signin"));
  on("home-signin", "click", () => showAuth("signin"));
  on("r-signin", "click", () => showAuth("signup"));
  on("auth-anonymous", "click", playNow);
  on("tab-signin", "click", () => selectTab("signin"));
  on("tab-signup", "click", () => selectTab("signup"));
  on("form-signin", "submit", submitSignin);
  on("form-signup", "submit", submitSignup);
  on("nav-logout", "click", logout);
  on("p-logout", "click", logout);
  on("nav-profile", "click", showProfile);
  on("r-profile", "click", showProfile);
  on("p-file", "change", changeAvatar);
  for (const radio of document.querySelectorAll("input[name='timer']")) {
    radio.addEventListener("change", changeTimer);
  }
  on("wager-range", "input", play.wagerMoved);
  on("wager-range", "keydown", (event) => event.key === "Enter" && play.lockWager());
  on("wager-lock", "click", play.lockWager);
  on("lock-in", "click", play.lockIn);
  on("next", "click", play.nextQuestion);
  for (const button of document.querySelectorAll("#options .option")) {
    button.addEventListener("click", () => play.choose(Number(button.dataset.option)));
  }
  document.addEventListener("keydown", onKey);
  api.events.addEventListener("unavailable", (event) => {
    notice("degraded", `${event.detail} (retrying…)`);
  });
}

async function boot() {
  wire();
  const health = checkHealth();
  try {
    setUser(await api.restore());
  } catch (error) {
    setUser(null);
    notice("error", `${describe(error)} You can play without an account meanwhile.`);
  }
  await health;
  if (!(await resumeSaved())) show("home");
}

boot();
