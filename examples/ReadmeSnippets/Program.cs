// Runs every README snippet in the README's order; a snippet that throws fails the run.

using System;

static class Program
{
    static int Main()
    {
        Snippets.RefCounting();
        Snippets.ArcAndShared();
        Snippets.MmioWindows();
        Snippets.GpioChips();
        Snippets.Virtqueue();
        CorePair.Run();
        Snippets.RcuRevocationDevres();
        Console.WriteLine("all README snippets ran"); // EXPECT: all README snippets ran
        return 0;
    }
}
