package io.understudy.engine.link;

/**
 * Why a secondary refused a primary's hello; every transport carries {@link #wireCode()} in its refusal message,
 * so an operator reads the same name whichever transport linked the pair.
 */
public enum RefusalCode
{
    VERSION(1, "version"),
    DISK_SIZE(2, "disk-size"),
    CLUSTER_SIZE(3, "cluster-size"),
    MODE(4, "mode"),
    BUSY(5, "busy"),
    NOT_RUNNING(6, "not-running"),
    PROTOCOL(7, "protocol"),
    EPOCH(8, "epoch"),
    GENERATION(9, "generation");

    private static final RefusalCode[] BY_WIRE_CODE = new RefusalCode[16];

    static
    {
        for (final RefusalCode code : values())
        {
            BY_WIRE_CODE[code.wireCode] = code;
        }
    }

    private final int wireCode;
    private final String label;

    RefusalCode(final int wireCode, final String label)
    {
        this.wireCode = wireCode;
        this.label = label;
    }

    public int wireCode()
    {
        return wireCode;
    }

    public String label()
    {
        return label;
    }

    /** @return the code with this wire value, or {@link #PROTOCOL} for a value no version defines. */
    public static RefusalCode fromWireCode(final int wireCode)
    {
        final RefusalCode code = wireCode > 0 && wireCode < BY_WIRE_CODE.length ? BY_WIRE_CODE[wireCode] : null;
        return code != null ? code : PROTOCOL;
    }
}
