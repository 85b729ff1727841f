-- The as-of date is exactly one row (every customer mart cross joins it).
select count(*) as rows_found
from {{ ref('int_as_of_date') }}
having count(*) <> 1
