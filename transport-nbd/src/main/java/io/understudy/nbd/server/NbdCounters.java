package io.understudy.nbd.server;

import io.understudy.nbd.protocol.NbdProtocol;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * What an operator asks about a running {@link NbdServer}: connections, requests in flight, requests and bytes
 * per command type, error replies, protocol violations and back-pressure waits.
 * <p>
 * Every counter is an atomic updated with plain {@code getAndAdd} (the value is all that matters, no other
 * memory is published through it) and read with a volatile read, so readers on any thread see recent values
 * without ever locking the request path.
 */
public final class NbdCounters
{
    private final AtomicLong connectionsAccepted = new AtomicLong();
    private final AtomicLong connectionsActive = new AtomicLong();
    private final AtomicLong connectionsRefused = new AtomicLong();
    private final AtomicLong inFlight = new AtomicLong();
    private final AtomicLong errorReplies = new AtomicLong();
    private final AtomicLong protocolViolations = new AtomicLong();
    private final AtomicLong backPressureWaits = new AtomicLong();
    private final AtomicLongArray requests = new AtomicLongArray(NbdProtocol.CMD_TYPES + 1);
    private final AtomicLongArray bytes = new AtomicLongArray(NbdProtocol.CMD_TYPES + 1);

    public long connectionsAccepted()
    {
        return connectionsAccepted.get();
    }

    public long connectionsActive()
    {
        return connectionsActive.get();
    }

    /** @return clients closed at once because {@code maxConnections} were open. */
    public long connectionsRefused()
    {
        return connectionsRefused.get();
    }

    /** @return requests accepted from clients whose reply has not been sent yet, over all connections. */
    public long inFlight()
    {
        return inFlight.get();
    }

    /** @return replies carrying an error (invalid requests and device errors). */
    public long errorReplies()
    {
        return errorReplies.get();
    }

    /** @return clients disconnected for breaking a MUST of the protocol (bad magic, huge lengths, truncation). */
    public long protocolViolations()
    {
        return protocolViolations.get();
    }

    /** @return times a connection stopped reading because its request or buffer budget was exhausted. */
    public long backPressureWaits()
    {
        return backPressureWaits.get();
    }

    /** @return requests received of a command type ({@link NbdProtocol#CMD_READ}...); unknown types count last. */
    public long requests(final int commandType)
    {
        return requests.get(typeIndex(commandType));
    }

    /** @return bytes named by requests of a command type (the request lengths). */
    public long bytes(final int commandType)
    {
        return bytes.get(typeIndex(commandType));
    }

    @Override
    public String toString()
    {
        final StringBuilder builder = new StringBuilder()
            .append("connections=").append(connectionsActive()).append('/').append(connectionsAccepted())
            .append(" refused=").append(connectionsRefused())
            .append(" inFlight=").append(inFlight())
            .append(" errors=").append(errorReplies())
            .append(" violations=").append(protocolViolations())
            .append(" backPressureWaits=").append(backPressureWaits());
        for (int type = 0; type < NbdProtocol.CMD_TYPES; type++)
        {
            builder.append(' ').append(NbdProtocol.commandName(type)).append('=').append(requests(type))
                .append('/').append(bytes(type)).append('B');
        }
        return builder.toString();
    }

    void onConnectionOpened()
    {
        connectionsAccepted.getAndIncrement();
        connectionsActive.getAndIncrement();
    }

    void onConnectionRefused()
    {
        connectionsRefused.getAndIncrement();
    }

    void onConnectionClosed()
    {
        connectionsActive.getAndDecrement();
    }

    void onRequest(final int commandType, final long length)
    {
        final int index = typeIndex(commandType);
        requests.getAndIncrement(index);
        bytes.getAndAdd(index, length);
    }

    void onInFlight(final int delta)
    {
        inFlight.getAndAdd(delta);
    }

    void onErrorReply()
    {
        errorReplies.getAndIncrement();
    }

    void onProtocolViolation()
    {
        protocolViolations.getAndIncrement();
    }

    void onBackPressureWait()
    {
        backPressureWaits.getAndIncrement();
    }

    private static int typeIndex(final int commandType)
    {
        return commandType >= 0 && commandType < NbdProtocol.CMD_TYPES ? commandType : NbdProtocol.CMD_TYPES;
    }
}
