/**
 * The forwarding and control links between two Understudy sidecars over Aeron (UDP or IPC), the same contracts as
 * the NBD transport's: {@link io.understudy.aeron.AeronPrimaryLink} is the primary's end (a
 * {@link io.understudy.engine.device.BlockDevice} to forward to, and the
 * {@link io.understudy.engine.link.PeerControl} link), {@link io.understudy.aeron.AeronSecondaryEndpoint} the
 * secondary's listening end, {@link io.understudy.aeron.AeronMedia} the media driver and client they run on, and
 * {@link io.understudy.aeron.WireProtocol} the versioned wire schema with its flyweights.
 */
package io.understudy.aeron;
