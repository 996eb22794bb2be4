# Sourced by the launcher and the test script: selects a JDK >= 25 into JAVA_HOME.
# Order: $JAVA_HOME if it is new enough, then `java` on PATH, then the usual install locations.

understudy_java_feature() { # prints the feature release (e.g. 25) of the java binary $1
    "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

understudy_select_jdk() {
    local candidate java feature
    for candidate in "${JAVA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")" \
                     /usr/lib/jvm/temurin-25-jdk-* /usr/lib/jvm/*25* /usr/lib/jvm/* /opt/java/* /opt/jdk*; do
        java="$candidate/bin/java"
        [ -n "$candidate" ] && [ -x "$java" ] || continue
        feature=$(understudy_java_feature "$java")
        if [ -n "$feature" ] && [ "$feature" -ge 25 ]; then
            export JAVA_HOME="$candidate"
            return 0
        fi
    done
    echo "understudy: JDK 25 or newer is required (found none); install one (e.g. Temurin 25) and set JAVA_HOME" >&2
    return 1
}
