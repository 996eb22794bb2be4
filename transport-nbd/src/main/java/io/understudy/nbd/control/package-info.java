/**
 * The control link between two Understudy sidecars: a versioned, length-prefixed binary protocol over TCP,
 * beside the NBD forwarding link, carrying the handshake, the secondary's part of the coordinated checkpoint,
 * heartbeats both ways and an orderly goodbye. See {@link io.understudy.nbd.control.ControlProtocol} for the
 * frames, {@link io.understudy.nbd.control.ControlLink} for an established link and
 * {@link io.understudy.nbd.control.ControlLinkListener} for the secondary's listener. It lives beside the NBD
 * transport because it rides the same network path; a QEMU peer has no control link and the sidecars fall
 * back to orchestrator-driven checkpoints.
 */
package io.understudy.nbd.control;
