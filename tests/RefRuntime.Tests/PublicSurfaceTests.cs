using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>
/// The safe layer's public surface: a .NET user writes <c>using RefRuntime;</c> only, so no type
/// of the Core assembly may appear in anything RefRuntime.dll exposes (issue #19).
/// </summary>
public sealed class PublicSurfaceTests
{
    private static readonly Assembly s_safe = typeof(GpioChip).Assembly;

    // Every visible type and every public or protected member of RefRuntime.dll, walked through
    // base types, interfaces, generic arguments and constraints, fields, properties, events,
    // method parameters and returns (attributes excluded): none names a Core type.
    [Fact]
    public void PublicSurface_NoCoreTypes()
    {
        var found = new List<string>();
        foreach (Type t in s_safe.GetTypes().Where(IsReachable))
        {
            foreach ((string where, Type used) in Uses(t))
            {
                foreach (Type core in CoreTypesIn(used))
                {
                    found.Add($"{Describe(t)}: {where} uses {core.FullName}");
                }
            }
        }

        Assert.True(found.Count == 0, "Core types in RefRuntime's public surface:\n  " + string.Join("\n  ", found.Distinct().OrderBy(s => s, StringComparer.Ordinal)));
    }

    // The check above looks at something: the public surface has the types users need.
    [Fact]
    public void PublicSurface_WalksTheWholeApi()
    {
        string[] names = s_safe.GetTypes().Where(IsReachable).Select(t => t.Name).ToArray();
        Assert.Contains("GpioChip", names);
        Assert.Contains("RcuDomain", names);
        Assert.Contains("Arc`1", names);
        Assert.NotEmpty(CoreTypesIn(typeof(Dictionary<int, RefRuntime.Core.RrStatus[]>)));
        Assert.Empty(CoreTypesIn(typeof(Dictionary<int, string[]>)));
    }

    // The safe enums convert to Core's with a cast: same names, same values.
    [Theory]
    [InlineData(typeof(GpioDirection), typeof(RefRuntime.Core.Devices.Gpio.RawGpioDirection))]
    [InlineData(typeof(GpioIrqType), typeof(RefRuntime.Core.Devices.Gpio.RawGpioIrqType))]
    [InlineData(typeof(VirtqueueFeatures), typeof(RefRuntime.Core.Virtio.VirtqFeatures))]
    public void SafeEnums_SameNamesAndValuesAsCore(Type safe, Type core)
    {
        static string[] Members(Type e) => Enum.GetNames(e).Select(n => $"{n}={Convert.ToUInt64(Enum.Parse(e, n), System.Globalization.CultureInfo.InvariantCulture)}").ToArray();
        Assert.Equal(Enum.GetUnderlyingType(core), Enum.GetUnderlyingType(safe));
        Assert.Equal(Members(core), Members(safe));
    }

    private static bool IsCore(Type t) => t.Assembly.GetName().Name == "RefRuntime.Core"
        || (t.Namespace?.StartsWith("RefRuntime.Core", StringComparison.Ordinal) ?? false);

    // A type outside code can name: public, or nested public/protected in such a type.
    private static bool IsReachable(Type t) =>
        t.IsPublic
        || (t.IsNested && (t.IsNestedPublic || t.IsNestedFamily || t.IsNestedFamORAssem) && IsReachable(t.DeclaringType!));

    private static bool IsVisible(MethodBase? m) => m is not null && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly);

    private static bool IsVisible(FieldInfo f) => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly;

    private static IEnumerable<(string Where, Type Used)> Uses(Type t)
    {
        if (t.BaseType is not null)
        {
            yield return ("base type", t.BaseType);
        }

        foreach (Type i in t.GetInterfaces())
        {
            yield return ("interface", i);
        }

        foreach ((string where, Type used) in ConstraintsOf(t.IsGenericTypeDefinition ? t.GetGenericArguments() : []))
        {
            yield return (where, used);
        }

        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (FieldInfo f in t.GetFields(all).Where(IsVisible))
        {
            yield return ($"field {f.Name}", f.FieldType);
        }

        foreach (PropertyInfo p in t.GetProperties(all).Where(p => IsVisible(p.GetMethod) || IsVisible(p.SetMethod)))
        {
            yield return ($"property {p.Name}", p.PropertyType);
            foreach (ParameterInfo ip in p.GetIndexParameters())
            {
                yield return ($"property {p.Name} index", ip.ParameterType);
            }
        }

        foreach (EventInfo e in t.GetEvents(all).Where(e => IsVisible(e.AddMethod) || IsVisible(e.RemoveMethod)))
        {
            yield return ($"event {e.Name}", e.EventHandlerType!);
        }

        // Property and event accessors were covered with their property or event above.
        foreach (MethodBase m in t.GetConstructors(all).Cast<MethodBase>().Concat(t.GetMethods(all).Where(m => !IsAccessor(m))).Where(IsVisible))
        {
            string name = m is ConstructorInfo ? "constructor" : $"method {m.Name}";
            if (m is MethodInfo mi)
            {
                yield return ($"{name} return", mi.ReturnType);
                foreach ((string where, Type used) in ConstraintsOf(mi.IsGenericMethodDefinition ? mi.GetGenericArguments() : []))
                {
                    yield return ($"{name} {where}", used);
                }
            }

            foreach (ParameterInfo p in m.GetParameters())
            {
                yield return ($"{name} parameter {p.Name}", p.ParameterType);
            }
        }
    }

    private static bool IsAccessor(MethodInfo m) =>
        m.IsSpecialName && (m.Name.StartsWith("get_", StringComparison.Ordinal) || m.Name.StartsWith("set_", StringComparison.Ordinal)
            || m.Name.StartsWith("add_", StringComparison.Ordinal) || m.Name.StartsWith("remove_", StringComparison.Ordinal));

    private static IEnumerable<(string Where, Type Used)> ConstraintsOf(Type[] genericParameters)
    {
        foreach (Type g in genericParameters)
        {
            foreach (Type c in g.GetGenericParameterConstraints())
            {
                yield return ($"constraint on {g.Name}", c);
            }
        }
    }

    // The Core types a type is built from: itself, element types, generic arguments, function pointer signatures.
    private static IEnumerable<Type> CoreTypesIn(Type t)
    {
        if (t.IsGenericParameter)
        {
            yield break;
        }

        if (t.HasElementType)
        {
            foreach (Type c in CoreTypesIn(t.GetElementType()!))
            {
                yield return c;
            }

            yield break;
        }

        if (t.IsFunctionPointer)
        {
            foreach (Type part in t.GetFunctionPointerParameterTypes().Append(t.GetFunctionPointerReturnType()))
            {
                foreach (Type c in CoreTypesIn(part))
                {
                    yield return c;
                }
            }

            yield break;
        }

        if (IsCore(t))
        {
            yield return t.IsGenericType ? t.GetGenericTypeDefinition() : t;
        }

        if (t.IsGenericType)
        {
            foreach (Type a in t.GetGenericArguments())
            {
                foreach (Type c in CoreTypesIn(a))
                {
                    yield return c;
                }
            }
        }
    }

    private static string Describe(Type t) => t.IsNested ? $"{Describe(t.DeclaringType!)}.{t.Name}" : t.FullName!;
}
