-- The RFM segment map covers every (recency_score, fm_score) cell of the 5 x 5 grid exactly once and
-- uses all 11 segments. Returns the offending cells or a row naming the missing segment count.
with

scores as (

    select 1 as score union all select 2 union all select 3 union all select 4 union all select 5

),

grid as (

    select r.score as recency_score, f.score as fm_score
    from scores as r
    cross join scores as f

),

cells as (

    select
        grid.recency_score,
        grid.fm_score,
        count(segment_map.segment) as mapped
    from grid
    left join {{ ref('rfm_segment_map') }} as segment_map
        on grid.recency_score = segment_map.recency_score
        and grid.fm_score = segment_map.fm_score
    group by grid.recency_score, grid.fm_score

)

select
    cast(recency_score as {{ dbt.type_string() }}) as problem_r,
    cast(fm_score as {{ dbt.type_string() }}) as problem_fm,
    'cell mapped ' || cast(mapped as {{ dbt.type_string() }}) || ' times' as problem
from cells
where mapped <> 1

union all

select null, null, 'only ' || cast(count(distinct segment) as {{ dbt.type_string() }}) || ' of 11 segments used'
from {{ ref('rfm_segment_map') }}
having count(distinct segment) <> 11

union all

select null, null, 'cells outside the 5 x 5 grid'
from {{ ref('rfm_segment_map') }}
having count(*) <> 25
