// README.md, "Using it from C#": the first snippet, verbatim.

using RefRuntime;

sealed class Session
{
    public RefCount Refs { get; } = new();    // starts at 1, owned by the creator

    public Session Get() { Refs.Inc(); return this; }

    public void Put()
    {
        if (Refs.DecAndTest())                  // true exactly once
            Release();
    }

    void Release() { /* ... */ }
}
