// The speaker and microphone buttons and the audio channels behind them.
//
// Why the buttons decide: a browser starts audio output only inside a user
// gesture, and asks before it records, so sound and microphone start off and
// each click opens or closes its channel. Closing matters in the session too:
// the agent captures the session's sound only while audio-out is open, and the
// session's microphone goes quiet once audio-in closes. What the user asked
// for survives a reconnect: the channels reopen on the new connection.

import { SpeakerPlayer } from './audio-out.js';
import { MIC_FORMAT_FIELDS, Microphone } from './audio-in.js';
import { AUDIO_IN_CHANNEL, AUDIO_OUT_CHANNEL, SAMPLE_RATE } from './audio.js';
import { HEADER_SIZE, Kind } from './protocol.js';

// MIC_DATA's fixed part (pts, capture_us) before the packet.
const MIC_DATA_HEADER = 16;

/** Wires #speaker and #mic to a SessionConnection. `status(text, kind)` shows errors in the status line. */
export class AudioControls {
  constructor(speakerButton, micButton, status, { AudioContextImpl = globalThis.AudioContext } = {}) {
    this.speakerButton = speakerButton;
    this.micButton = micButton;
    this.status = status;
    this.AudioContextImpl = AudioContextImpl;
    this.conn = null;
    this.ready = false;
    this.wanted = { [AUDIO_OUT_CHANNEL]: false, [AUDIO_IN_CHANNEL]: false };
    this.closing = new Set(); // channels we closed whose CHANNEL_CLOSE answer has not come yet
    this.context = null;
    this.player = null;
    this.mic = new Microphone((fields) => this.sendMic(fields));
    speakerButton.addEventListener('click', () => this.toggleSpeaker());
    micButton.addEventListener('click', () => this.toggleMic());
    this.render();
  }

  /** A new connection (not yet authenticated): nothing is open on it. */
  attach(conn) {
    this.conn = conn;
    this.ready = false;
    this.closing.clear();
  }

  /** The session can take channels now: open what the user switched on. */
  sessionReady() {
    this.ready = true;
    this.openIfWanted(AUDIO_OUT_CHANNEL);
    this.openIfWanted(AUDIO_IN_CHANNEL);
  }

  /** Show the buttons while logged in; logged out, sound and microphone are switched off. */
  setVisible(visible) {
    this.speakerButton.hidden = !visible;
    this.micButton.hidden = !visible;
    if (visible) return;
    if (this.wanted[AUDIO_OUT_CHANNEL]) this.speakerOff();
    if (this.wanted[AUDIO_IN_CHANNEL] || this.micButton.dataset.state === 'asking') this.micOff();
  }

  // -- buttons ---------------------------------------------------------------------
  toggleSpeaker() {
    if (this.wanted[AUDIO_OUT_CHANNEL]) {
      this.speakerOff();
      return;
    }
    if (!this.AudioContextImpl || !globalThis.AudioDecoder) {
      this.status('This browser cannot play the session\'s sound (it needs WebCodecs and a secure page).', 'error');
      return;
    }
    // Inside the click: browsers allow an AudioContext to run only from a user gesture.
    this.context ||= new this.AudioContextImpl({ sampleRate: SAMPLE_RATE, latencyHint: 'interactive' });
    this.context.resume().catch(() => {});
    this.player = new SpeakerPlayer(this.context, { onError: (text) => this.status(text, 'error') });
    this.wanted[AUDIO_OUT_CHANNEL] = true;
    this.openIfWanted(AUDIO_OUT_CHANNEL);
    this.render();
  }

  speakerOff() {
    this.wanted[AUDIO_OUT_CHANNEL] = false;
    this.player?.stop();
    this.player = null;
    this.closeChannel(AUDIO_OUT_CHANNEL);
    this.context?.suspend().catch(() => {});
    this.render();
  }

  async toggleMic() {
    if (this.wanted[AUDIO_IN_CHANNEL] || this.micButton.dataset.state === 'asking') {
      this.micOff();
      return;
    }
    this.micButton.dataset.state = 'asking';
    this.render();
    try {
      await this.mic.start();
    } catch (error) {
      this.micButton.dataset.state = '';
      this.status(`Microphone unavailable: ${error.message}.`, 'error');
      this.render();
      return;
    }
    if (this.micButton.dataset.state !== 'asking') { // switched off while the browser asked
      this.mic.stop();
      return;
    }
    this.micButton.dataset.state = '';
    this.wanted[AUDIO_IN_CHANNEL] = true;
    this.openIfWanted(AUDIO_IN_CHANNEL);
    this.render();
  }

  micOff() {
    this.wanted[AUDIO_IN_CHANNEL] = false;
    this.micButton.dataset.state = '';
    this.mic.stop();
    this.closeChannel(AUDIO_IN_CHANNEL);
    this.render();
  }

  render() {
    const speaker = this.wanted[AUDIO_OUT_CHANNEL];
    this.speakerButton.setAttribute('aria-pressed', String(speaker));
    this.speakerButton.textContent = speaker ? 'Sound on' : 'Sound off';
    this.speakerButton.title = speaker ? 'Mute the session\'s sound' : 'Play the session\'s sound here';
    const mic = this.wanted[AUDIO_IN_CHANNEL];
    const asking = this.micButton.dataset.state === 'asking';
    this.micButton.setAttribute('aria-pressed', String(mic));
    this.micButton.classList.toggle('live', mic);
    this.micButton.textContent = mic ? '● Mic on' : asking ? 'Mic…' : 'Mic off';
    this.micButton.title = mic ? 'Your microphone goes to the session; click to stop'
      : 'Send your microphone to the session';
  }

  // -- channels --------------------------------------------------------------------
  openIfWanted(channel) {
    if (!this.conn || !this.ready || !this.wanted[channel] || this.conn.channels.has(channel)) return;
    this.conn.openChannel(channel, channel === AUDIO_OUT_CHANNEL ? Kind.AUDIO_OUT : Kind.AUDIO_IN);
  }

  closeChannel(channel) {
    if (!this.conn?.channels.has(channel)) return;
    this.closing.add(channel);
    this.conn.closeChannel(channel);
  }

  sendMic(fields) {
    const conn = this.conn;
    if (!conn?.isOpen(AUDIO_IN_CHANNEL)) return false;
    if (conn.sendWindow(AUDIO_IN_CHANNEL) < HEADER_SIZE + MIC_DATA_HEADER + fields.packet.length) return false;
    return conn.send(AUDIO_IN_CHANNEL, { name: 'MIC_DATA', fields });
  }

  /** A message on an audio channel; true if it was ours. Credit goes back once it is handed to the decoder. */
  handle(conn, channel, kind, message, cost) {
    if (kind !== Kind.AUDIO_OUT && kind !== Kind.AUDIO_IN) return false;
    if (kind === Kind.AUDIO_OUT && conn === this.conn) this.player?.handle(message);
    conn.consumed(channel, cost);
    return true;
  }

  /** A control message: true if it was CHANNEL_OPENED / CHANNEL_REFUSED of an audio channel (handled here). */
  control(conn, message) {
    if (message.name !== 'CHANNEL_OPENED' && message.name !== 'CHANNEL_REFUSED') return false;
    const channel = message.fields.channel;
    if (conn !== this.conn || (channel !== AUDIO_OUT_CHANNEL && channel !== AUDIO_IN_CHANNEL)) return false;
    if (message.name === 'CHANNEL_OPENED') {
      if (channel === AUDIO_IN_CHANNEL) {
        this.mic.restartStream();
        conn.send(AUDIO_IN_CHANNEL, { name: 'MIC_FORMAT', fields: MIC_FORMAT_FIELDS });
      }
      return true;
    }
    if (this.closing.delete(channel)) { // the server confirmed our close; reopen if switched back on meanwhile
      this.openIfWanted(channel);
      return true;
    }
    if (!this.wanted[channel]) return true;
    const what = channel === AUDIO_OUT_CHANNEL ? 'The session\'s sound' : 'The microphone';
    this.status(`${what} is unavailable: ${message.fields.message || 'refused by the server'}`, 'error');
    if (channel === AUDIO_OUT_CHANNEL) this.speakerOff();
    else this.micOff();
    return true;
  }

  /** Numbers for tests and debugging. */
  stats() {
    return {
      speaker: this.wanted[AUDIO_OUT_CHANNEL], mic: this.wanted[AUDIO_IN_CHANNEL],
      player: this.player
        ? { ...this.player.stats, delay: this.player.delay(), resyncs: this.player.clock.resyncs } : null,
      mic_stats: { ...this.mic.stats },
      context: this.context ? { state: this.context.state, rate: this.context.sampleRate } : null,
    };
  }

  /** The most recent decoded samples (first channel) and their rate. */
  recentSamples() {
    const samples = Array.from(this.player?.ring.recent() || []);
    return { rate: this.player?.format?.sample_rate || SAMPLE_RATE, samples };
  }

  /** The analyser's dominant frequency of what is playing now (Hz), 0 if silent or off. */
  dominantFrequency() {
    return this.player ? this.player.dominantFrequency() : 0;
  }
}
