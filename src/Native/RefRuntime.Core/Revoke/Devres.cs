// Managed resources of a device (Linux devres, docs/revocation.md): a list of release actions owned by a
// device, released last-in-first-out on removal or on a failed probe, with groups for rolling
// back part of a multi-step acquisition.
//
// Entries are appended at the tail; lookups scan from the tail (the newest match wins) and match
// an action on the pair (function, context). Release callbacks run outside the lock, in reverse
// order of addition. A group is an opening marker and, once closed, a closing marker: releasing
// the group releases every action between them (or to the end of the list while it is open);
// removing the group drops only its markers, so its resources stay with the device and are
// released with it later.
//
// Groups may overlap without nesting (G2 opened inside G1 and closed after it, or opened before
// G1 and closed inside it). Releasing a group follows the kernel's remove_nodes()
// (drivers/base/devres.c): every action in the range goes, but a group's markers go only if
// the group lies wholly inside the range (both markers inside, or its opening marker for a group
// still open); any other group keeps both markers, so it can still be closed, released or
// removed later and never grows past its own closing marker. Id 0 names the newest open group in
// close, remove and release, as the kernel's NULL id does (find_group()).

using System;
using System.Collections.Generic;
using System.Threading;

namespace RefRuntime.Core.Revoke;

/// <summary>A device's list of release actions (see file comment). Thread-safe.</summary>
public sealed unsafe class DevresList
{
    private readonly List<Entry> _entries = new();
    private readonly Lock _lock = new();
    private ulong _nextGroup;

    private enum Kind
    {
        Action,
        GroupOpen,
        GroupClose,
    }

    private sealed class Entry
    {
        public Kind Kind;
        public nint Native;     // delegate* unmanaged<void*, void>
        public nint Context;
        public Action? Managed;
        public ulong Group;
    }

    /// <summary>Number of entries (actions and group markers).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Adds a C action: <c>action(context)</c> runs on release (<c>devm_add_action</c>).</summary>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.InvalidArgument"/> for a null action.</returns>
    public RrStatus AddAction(delegate* unmanaged<void*, void> action, void* context)
    {
        if (action == null)
        {
            return RrStatus.InvalidArgument;
        }

        Append(new Entry { Kind = Kind.Action, Native = (nint)action, Context = (nint)context });
        return RrStatus.Ok;
    }

    /// <summary>Adds a .NET action that runs on release.</summary>
    public void Add(Action release)
    {
        ArgumentNullException.ThrowIfNull(release);
        Append(new Entry { Kind = Kind.Action, Managed = release });
    }

    /// <summary>
    /// <c>devm_add_action_or_reset</c>: adds the action, or, if it cannot be added, runs it at
    /// once and reports the failure, so the resource is released exactly once either way.
    /// </summary>
    public RrStatus AddActionOrReset(delegate* unmanaged<void*, void> action, void* context)
    {
        if (action == null)
        {
            return RrStatus.InvalidArgument;
        }

        try
        {
            Append(new Entry { Kind = Kind.Action, Native = (nint)action, Context = (nint)context });
            return RrStatus.Ok;
        }
        catch (OutOfMemoryException)
        {
            action(context);
            return RrStatus.OutOfMemory;
        }
    }

    private void Append(Entry e)
    {
        lock (_lock)
        {
            _entries.Add(e);
        }
    }

    private int FindNewest(nint native, nint context, Action? managed)
    {
        for (int i = _entries.Count - 1; i >= 0; i--)
        {
            Entry e = _entries[i];
            if (e.Kind == Kind.Action && (managed is not null ? Equals(e.Managed, managed) : e.Native == native && e.Context == context && e.Managed is null))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Removes the newest matching C action without calling it (<c>devm_remove_action_nowarn</c>).</summary>
    /// <returns>Whether an entry matched.</returns>
    public bool RemoveAction(delegate* unmanaged<void*, void> action, void* context) => TakeNewest((nint)action, (nint)context, null) is not null;

    /// <summary>Removes the newest matching C action and calls it (<c>devm_release_action</c>).</summary>
    /// <returns>Whether an entry matched.</returns>
    public bool ReleaseAction(delegate* unmanaged<void*, void> action, void* context) => RunTaken(TakeNewest((nint)action, (nint)context, null));

    /// <summary>Removes the newest entry for <paramref name="release"/> without calling it.</summary>
    public bool Remove(Action release) => TakeNewest(0, 0, release) is not null;

    /// <summary>Removes the newest entry for <paramref name="release"/> and calls it.</summary>
    public bool Release(Action release) => RunTaken(TakeNewest(0, 0, release));

    /// <summary>Whether the C action is on the list (<c>devm_is_action_added</c>).</summary>
    public bool IsActionAdded(delegate* unmanaged<void*, void> action, void* context)
    {
        lock (_lock)
        {
            return FindNewest((nint)action, (nint)context, null) >= 0;
        }
    }

    /// <summary>Finds and unlinks the newest matching action in one critical section.</summary>
    private Entry? TakeNewest(nint native, nint context, Action? managed)
    {
        lock (_lock)
        {
            int i = FindNewest(native, context, managed);
            if (i < 0)
            {
                return null;
            }

            Entry e = _entries[i];
            _entries.RemoveAt(i);
            return e;
        }
    }

    /// <summary>Runs a taken entry outside the lock.</summary>
    private static bool RunTaken(Entry? e)
    {
        if (e is null)
        {
            return false;
        }

        Run(e);
        return true;
    }

    /// <summary>Opens a group (<c>devres_open_group</c>).</summary>
    /// <returns>The group's id (never 0).</returns>
    public ulong OpenGroup()
    {
        lock (_lock)
        {
            ulong id = ++_nextGroup;
            _entries.Add(new Entry { Kind = Kind.GroupOpen, Group = id });
            return id;
        }
    }

    /// <summary>Closes a group (<c>devres_close_group</c>); id 0 means the newest open group.</summary>
    /// <returns>Whether such an open group existed.</returns>
    public bool CloseGroup(ulong id)
    {
        lock (_lock)
        {
            ulong g = Resolve(id);
            if (g == 0 || FindMarker(Kind.GroupOpen, g) < 0 || FindMarker(Kind.GroupClose, g) >= 0)
            {
                return false;
            }

            _entries.Add(new Entry { Kind = Kind.GroupClose, Group = g });
            return true;
        }
    }

    /// <summary>
    /// Drops a group's markers, keeping its resources on the list (<c>devres_remove_group</c>);
    /// id 0 means the newest open group.
    /// </summary>
    /// <returns>Whether the group existed.</returns>
    public bool RemoveGroup(ulong id)
    {
        lock (_lock)
        {
            ulong g = Resolve(id);
            int open = g == 0 ? -1 : FindMarker(Kind.GroupOpen, g);
            if (open < 0)
            {
                return false;
            }

            int close = FindMarker(Kind.GroupClose, g);
            if (close >= 0)
            {
                _entries.RemoveAt(close);
            }

            _entries.RemoveAt(open);
            return true;
        }
    }

    /// <summary>
    /// Releases every action between a group's markers (to the end of the list while it is open),
    /// last-in-first-out (<c>devres_release_group</c>); id 0 means the newest open group. The
    /// markers of every group lying wholly inside that range go too (the group's own and nested
    /// groups'); a group that only overlaps the range keeps both markers (see file comment).
    /// </summary>
    /// <returns>The number of actions released, or -1 when the group does not exist.</returns>
    public int ReleaseGroup(ulong id)
    {
        var todo = new List<Entry>();
        lock (_lock)
        {
            ulong g = Resolve(id);
            int open = g == 0 ? -1 : FindMarker(Kind.GroupOpen, g);
            if (open < 0)
            {
                return -1;
            }

            int close = FindMarker(Kind.GroupClose, g);
            int end = close >= 0 ? close : _entries.Count - 1; // inclusive

            // Which groups lie wholly inside [open, end]: both markers, or the opening marker of
            // a group that is still open (kernel: colour 2 in remove_nodes' second pass).
            var opened = new HashSet<ulong>();
            var contained = new HashSet<ulong>();
            for (int i = open; i <= end; i++)
            {
                Entry e = _entries[i];
                if (e.Kind == Kind.GroupOpen)
                {
                    opened.Add(e.Group);
                    if (FindMarker(Kind.GroupClose, e.Group) < 0)
                    {
                        contained.Add(e.Group);
                    }
                }
                else if (e.Kind == Kind.GroupClose && opened.Contains(e.Group))
                {
                    contained.Add(e.Group);
                }
            }

            // Take the range's actions and the contained groups' markers; keep everything else in order.
            var kept = new List<Entry>(_entries.Count);
            for (int i = 0; i < _entries.Count; i++)
            {
                Entry e = _entries[i];
                bool inRange = i >= open && i <= end;
                if (inRange && (e.Kind == Kind.Action || contained.Contains(e.Group)))
                {
                    todo.Add(e);
                }
                else
                {
                    kept.Add(e);
                }
            }

            _entries.Clear();
            _entries.AddRange(kept);
        }

        return RunReverse(todo);
    }

    /// <summary>Releases everything, last-in-first-out (<c>devres_release_all</c>: device removal or failed probe).</summary>
    /// <returns>The number of actions released.</returns>
    public int ReleaseAll()
    {
        List<Entry> todo;
        lock (_lock)
        {
            todo = new List<Entry>(_entries);
            _entries.Clear();
        }

        return RunReverse(todo);
    }

    private int FindMarker(Kind kind, ulong id)
    {
        for (int i = _entries.Count - 1; i >= 0; i--)
        {
            if (_entries[i].Kind == kind && _entries[i].Group == id)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The group an id names: itself, or for 0 the newest open group (0 when none).</summary>
    private ulong Resolve(ulong id) => id != 0 ? id : NewestOpenGroup();

    private ulong NewestOpenGroup()
    {
        for (int i = _entries.Count - 1; i >= 0; i--)
        {
            Entry e = _entries[i];
            if (e.Kind == Kind.GroupOpen && FindMarker(Kind.GroupClose, e.Group) < 0)
            {
                return e.Group;
            }
        }

        return 0;
    }

    /// <summary>Runs the actions among <paramref name="todo"/> in reverse; every one runs even if a .NET action throws.</summary>
    private static int RunReverse(List<Entry> todo)
    {
        int n = 0;
        List<Exception>? errors = null;
        for (int i = todo.Count - 1; i >= 0; i--)
        {
            if (todo[i].Kind != Kind.Action)
            {
                continue;
            }

            n++;
            try
            {
                Run(todo[i]);
            }
            catch (Exception e)
            {
                (errors ??= new List<Exception>()).Add(e);
            }
        }

        if (errors is not null)
        {
            throw new AggregateException("One or more device resource release actions threw; every action was still run.", errors);
        }

        return n;
    }

    private static void Run(Entry e)
    {
        if (e.Managed is { } a)
        {
            a();
        }
        else
        {
            // SAFETY: Native is the caller's action, registered with its context (header contract).
            ((delegate* unmanaged<void*, void>)e.Native)((void*)e.Context);
        }
    }
}
