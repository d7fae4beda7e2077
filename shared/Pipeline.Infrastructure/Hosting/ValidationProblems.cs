namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// The problems found in one request, field by field: every problem is collected before anything is refused, so a
/// sender learns all that is wrong at once. <see cref="ToDictionary"/> gives them in the shape of HTTP problem details'
/// errors.
/// </summary>
public sealed class ValidationProblems
{
    private readonly Dictionary<string, List<string>> _fields = new(StringComparer.Ordinal);

    public int Count => _fields.Count;

    public void Add(string field, string problem)
    {
        if (!_fields.TryGetValue(field, out var problems))
        {
            _fields[field] = problems = [];
        }
        problems.Add(problem);
    }

    public IReadOnlyDictionary<string, string[]> ToDictionary() => _fields.ToDictionary(f => f.Key, f => f.Value.ToArray(), StringComparer.Ordinal);
}
