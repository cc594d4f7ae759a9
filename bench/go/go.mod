module uoc/bench/median

go 1.19
